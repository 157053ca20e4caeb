"""The runner with the registered video and audio modalities (real mp4 / wav files, tiny models)."""
from __future__ import annotations

import importlib.util
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from mmpost.eval.runner import run_evaluation
from mmpost.registry import MODEL_ZOO

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval" / "official_formats.py"
_spec = importlib.util.spec_from_file_location("eval_official_formats_media", FIXTURES)
official_formats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(official_formats)


def sample_lines(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"samples_{name}.jsonl").read_text().splitlines()]


def test_video_benchmarks_through_the_video_modality(tiny_vl_dir, tmp_path):
    write_video = pytest.importorskip("mmpost.modalities.video.tiny").write_video
    data = official_formats.write_all(tmp_path / "data", ["videomme", "mvbench"])
    frames = np.stack([np.full((56, 56, 3), 25 * i, dtype=np.uint8) for i in range(8)])
    write_video(frames, Path(data["videomme"]) / "videos" / "fFjv93ACGo8.mp4")
    write_video(frames, Path(data["mvbench"]) / "video" / "action_sequence" / "ZS9XR.mp4")
    outputs = {}
    for batch_size in (1, 2):
        folder = tmp_path / f"b{batch_size}"
        results = run_evaluation(str(tiny_vl_dir), ["videomme", "mvbench"], data, output=str(folder), batch_size=batch_size,
                                 max_new_tokens=6, modality_args={"video": {"nframes": 4}})
        assert all("error" not in entry for entry in results["results"].values())
        outputs[batch_size] = [s["raw_output"] for name in ("videomme", "mvbench") for s in sample_lines(folder, name)]
    assert len(outputs[1]) == 3 and outputs[1] == outputs[2]


def test_mmau_through_the_audio_modality(tmp_path):
    model_dir = MODEL_ZOO.get("tiny-qwen2-audio")(tmp_path / "tiny-audio")
    data = official_formats.write_all(tmp_path / "data", ["mmau"])
    with wave.open(str(Path(data["mmau"]) / "test-mini-audios" / "a1.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.sin(np.arange(8000) / 10) * 3000).astype(np.int16).tobytes())
    results = run_evaluation(str(model_dir), ["mmau"], data, output=str(tmp_path / "out"), max_new_tokens=6)
    entry = results["results"]["mmau"]
    assert "error" not in entry and entry["n_samples"] == 1 and entry["counts"]["total"] == 1
    assert sample_lines(tmp_path / "out", "mmau")[0]["target"] == "Man"
