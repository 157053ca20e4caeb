"""`mmpost eval --model` end to end on the tiny Qwen2.5-VL and official-format fixtures."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from mmpost.eval import runner
from mmpost.eval.cli import eval_main
from mmpost.eval.runner import TextOnlyEncoder, resolve_model_dir, run_evaluation
from mmpost.judge import Judge

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval" / "official_formats.py"
_spec = importlib.util.spec_from_file_location("eval_official_formats", FIXTURES)
official_formats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(official_formats)

ALL = ["mathvista", "screenspot", "refcoco", "wemath", "mathverse", "drivelm", "videomme", "mvbench", "mmau"]


class MediaCheckingTextEncoder(TextOnlyEncoder):
    """Stands in for the video/audio modalities (not in this repository yet): checks the media files
    the benchmark resolved exist, then encodes the text part only."""

    def __init__(self):
        self.seen: list[str] = []

    def encode_prompt(self, processor, messages, sample):
        for kind in ("videos", "audios"):
            for path in sample.get(kind, []):
                assert Path(path).is_file(), path
                self.seen.append(Path(path).name)
        text_only = [{**m, "content": [c for c in m["content"] if c["type"] == "text"]} if isinstance(m["content"], list) else m
                     for m in messages]
        return super().encode_prompt(processor, text_only, sample)


def local_judge(prompt: str, system: str | None) -> str:
    return "1" if prompt.rstrip().endswith("Judgement:") else "A"


def run(model_dir, data, output, batch_size, benchmarks=ALL, **kwargs):
    stub = MediaCheckingTextEncoder()
    results = run_evaluation(str(model_dir), benchmarks, data, output=str(output), batch_size=batch_size, max_new_tokens=6,
                             judge=Judge(local=local_judge), modalities={"video": stub, "audio": stub}, **kwargs)
    return results, stub


def samples(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"samples_{name}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return official_formats.write_all(tmp_path_factory.mktemp("benchmarks"))


def test_every_benchmark_end_to_end_batch_invariant_and_cached(tiny_vl_dir, data, tmp_path, monkeypatch):
    first, stub = run(tiny_vl_dir, data, tmp_path / "b1", batch_size=1)
    assert sorted(stub.seen) == ["ZS9XR.mp4", "a1.wav", "fFjv93ACGo8.mp4", "fFjv93ACGo8.mp4"]
    second, _ = run(tiny_vl_dir, data, tmp_path / "b4", batch_size=4)
    for name in ALL:
        entry = first["results"][name]
        assert "error" not in entry, entry.get("error")
        assert entry["scorer_mode"] == "official" and entry["n_samples"] > 0 and entry["metrics"]
        assert len(entry["model_fingerprint"]) == 64 and len(entry["data_fingerprint"]) == 64
        one, four = samples(tmp_path / "b1", name), samples(tmp_path / "b4", name)
        assert len(one) == entry["n_samples"]
        assert [(s["id"], s["raw_output"]) for s in one] == [(s["id"], s["raw_output"]) for s in four]
        assert set(one[0]) >= {"doc_id", "id", "prompt", "raw_output", "extracted", "target", "score", "resps"}
        assert second["results"][name]["metrics"] == entry["metrics"]
    assert first["config"]["generation"]["max_new_tokens"] == 6 and first["config"]["generation"]["greedy"] is True
    assert "torch" in first["versions"] and first["n-samples"]["wemath"]["effective"] == 3
    assert {"score_strict", "score_loose", "IK", "IG", "CM_strict", "RM_loose"} <= set(first["results"]["wemath"]["metrics"])
    assert all(s["raw_output"].startswith("(") for s in samples(tmp_path / "b1", "mvbench"))  # MVBench's "(" put back
    assert samples(tmp_path / "b1", "mmau")[0]["target"] == "Man"

    def no_generation(self, prompts):
        raise AssertionError("the cache should have answered every prompt")

    monkeypatch.setattr(runner.GreedyGenerator, "generate", no_generation)
    again, _ = run(tiny_vl_dir, data, tmp_path / "b4", batch_size=2)
    for name in ALL:
        assert again["results"][name]["cached_answers"] == again["results"][name]["n_samples"]
        assert again["results"][name]["metrics"] == second["results"][name]["metrics"]


def test_interrupted_run_resumes_from_the_cache(tiny_vl_dir, data, tmp_path):
    partial, _ = run(tiny_vl_dir, data, tmp_path, batch_size=2, benchmarks=["wemath"], limit=2)
    assert partial["results"]["wemath"]["cached_answers"] == 0
    cache_file = tmp_path / "cache" / "wemath.rank0.jsonl"
    with open(cache_file, "a") as handle:
        handle.write('{"key": "torn')  # a crash in the middle of a write
    full, _ = run(tiny_vl_dir, data, tmp_path, batch_size=2, benchmarks=["wemath"])
    assert full["results"]["wemath"]["cached_answers"] == 2 and full["results"]["wemath"]["n_samples"] == 3
    fresh, _ = run(tiny_vl_dir, data, tmp_path / "fresh", batch_size=3, benchmarks=["wemath"])
    assert [s["raw_output"] for s in samples(tmp_path, "wemath")] == [s["raw_output"] for s in samples(tmp_path / "fresh", "wemath")]


def test_run_directory_resolves_to_latest_checkpoint(tiny_vl_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_vl_dir, run_dir / "checkpoints" / "step_4" / "model")
    (run_dir / "checkpoints" / "step_2").mkdir()
    (run_dir / "checkpoints" / "latest").write_text("step_4")
    assert resolve_model_dir(run_dir) == run_dir / "checkpoints" / "step_4" / "model"
    assert resolve_model_dir(tiny_vl_dir) == tiny_vl_dir
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="latest"):
        resolve_model_dir(tmp_path / "empty")
    fingerprint = runner.model_fingerprint(run_dir / "checkpoints" / "step_4" / "model")
    assert fingerprint == runner.model_fingerprint(tiny_vl_dir)  # content, not location


def test_cli_runs_scores_and_reports_unscored_benchmarks(tiny_vl_dir, data, tmp_path, capsys):
    argv = ["--model", str(tiny_vl_dir), "--benchmark", "wemath,screenspot", "--data",
            f"wemath={data['wemath']},screenspot={data['screenspot']}", "--limit", "2", "--batch-size", "2",
            "--max-new-tokens", "4", "--output", str(tmp_path / "cli"), "--score-arg", "screenspot.coords=resized_pixels"]
    assert eval_main(argv) == 0
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["results"]["screenspot"]["notes"] == ["model coordinate convention: resized_pixels"]
    assert results["results"]["wemath"]["n_samples"] == 2 and "score_strict" in capsys.readouterr().out
    # MathVista needs the LLM extraction for free-form text: without a judge it is reported, not faked
    code = eval_main(["--model", str(tiny_vl_dir), "--benchmark", "mathvista", "--data", data["mathvista"],
                      "--max-new-tokens", "4", "--output", str(tmp_path / "nojudge")])
    entry = json.loads((tmp_path / "nojudge" / "results.json").read_text())["results"]["mathvista"]
    assert code == 1 and "JudgeUnavailableError" in entry["error"] and entry["metrics"] == {}
    assert "NOT SCORED" in capsys.readouterr().out
    with pytest.raises(ValueError, match="mode"):
        run_evaluation(str(tiny_vl_dir), ["wemath"], data, mode="lmms_eval", output=str(tmp_path / "x"))


def test_cli_score_subcommand(tmp_path):
    template = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "videomme" / "output_test_template.json"
    assert template.is_file(), f"missing third-party fixture {template}"
    assert eval_main(["score", "videomme", str(template), "--output", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["results"]["videomme"]["metrics"]["accuracy"] == pytest.approx(7 / 9)
