"""GRPO on the video_motion task with the tiny Qwen2.5-VL: the CPU preset runs end to end (G samples per
video prompt through HF generate, M-RoPE with second_per_grid_ts), and the video modality's budget option
reaches the adapter from the config."""
from __future__ import annotations

import json
from pathlib import Path

from mmpost.builder import build_run
from mmpost.config import load_config
from mmpost.trainer import train

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "grpo.yaml"


def video_preset(tmp_path: Path, *extra: str):
    return load_config(RECIPE, [
        f"model.path={tmp_path / 'tiny-qwen2.5-vl'}", "model.zoo=tiny-qwen2.5-vl", "data.task=video_motion",
        f"data.task_args.cache_dir={tmp_path / 'clips'}", "data.task_args.train_size=16", "data.heldout_size=4",
        "data.prompts_per_step=2", "rollout.num_generations=4", "rollout.max_new_tokens=8", "train.steps=2",
        "train.threads=1", f"train.output_dir={tmp_path / 'run'}", "train.progress=false", *extra])


def test_video_grpo_preset_runs(tmp_path):
    summary = train(video_preset(tmp_path))
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert record["rollout/sequences"] == 8 and record["rollout/mean_length"] <= 8
        assert {"reward/exact_match", "reward/answer_tag_format"} <= record.keys()
    assert (Path(summary["checkpoint"]) / "model" / "model.safetensors").is_file()


def test_modality_args_reach_the_video_adapter(tmp_path):
    run = build_run(video_preset(tmp_path, "data.modality_args.nframes=2", "data.modality_args.max_prompt_tokens=80",
                                 "eval.heldout=false"))
    sample = run.modality.decode(run.train_rows[0], None)
    encoding = run.policy.encode_prompts([sample])[0]
    assert encoding.media["video_grid_thw"][0, 0].item() == 1  # 2 frames = one temporal patch
    assert encoding.input_ids.numel() <= 80 and sample["decoded"]["budget_actions"][-1]["action"] == "fit"
