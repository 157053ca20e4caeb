"""Every modality trains a few steps in CI. video_motion, audio_mcq, gui_click and driving_waypoints already
train through their recipes (tests/test_recipe_video.py, test_recipe_audio_grpo.py, test_recipe_guirlvg.py,
test_recipe_driving.py); this file adds what was missing: robot_reach with the tiny VLA, whose policy may
only sample action tokens (the task's `allowed_token_ids`, enforced by the engine's `TokenPolicy`)."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import REPO, tiny_overrides
from mmpost.builder import build_run
from mmpost.config import load_config
from mmpost.experience import StepContext
from mmpost.modalities.robot.processing import action_token_names, parse_action_bins
from mmpost.registry import MODEL_ZOO, TASKS
from mmpost.tokenizer import build_tiny_tokenizer
from mmpost.trainer import train

RECIPE = REPO / "recipes" / "grpo.yaml"
CHUNK = 2  # actions per answer: 2 steps x 2 dimensions = 4 action tokens, then EOS
RECIPE_TESTS = {  # the modalities whose few-step training lives in a recipe test
    "video_motion": "test_recipe_video.py", "audio_mcq": "test_recipe_audio_grpo.py",
    "gui_click": "test_recipe_guirlvg.py", "driving_waypoints": "test_recipe_driving.py",
}


@pytest.fixture(scope="module")
def tiny_vla_dir(tmp_path_factory):
    return MODEL_ZOO.get("tiny-vla-qwen2.5-vl")(tmp_path_factory.mktemp("zoo") / "tiny-vla")


def robot_preset(model_dir, out_dir, **extra):
    values = {"data.task": "robot_reach", "data.task_args": f"{{chunk: {CHUNK}, train_size: 16, heldout_size: 4}}",
              "rollout.max_new_tokens": 2 * CHUNK + 1, "train.steps": 2, "optim.lr": "1e-3", **extra}
    return load_config(RECIPE, tiny_overrides(model_dir, out_dir, **values))


def test_other_modalities_train_in_their_recipe_tests():
    for task, test_file in RECIPE_TESTS.items():
        text = (REPO / "tests" / test_file).read_text()
        assert task in text or TASKS.get(task).modality in text, f"{test_file} no longer trains {task}"
        assert "train(" in text


def test_robot_task_allows_exactly_its_action_tokens(tiny_vla_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_vla_dir)
    task = TASKS.get("robot_reach")(chunk=CHUNK, n_bins=8)
    allowed = task.allowed_token_ids(tokenizer)
    assert allowed == sorted(tokenizer.convert_tokens_to_ids(action_token_names(8)))
    assert tokenizer.decode(allowed, skip_special_tokens=True) == "".join(f"<act_{i}>" for i in range(8))
    with pytest.raises(ValueError, match="lacks .* action token"):
        task.allowed_token_ids(build_tiny_tokenizer())  # a plain tiny tokenizer: no action tokens


def test_robot_rollouts_hold_only_action_tokens_or_eos(tiny_vla_dir, tmp_path):
    run = build_run(robot_preset(tiny_vla_dir, tmp_path / "run", **{"rollout.num_generations": 8, "eval.heldout": "false"}))
    allowed = set(run.task.allowed_token_ids(run.policy.tokenizer))
    eos = set(run.policy.eos_token_ids)
    # The engine suppresses the whole vocabulary except the actions and EOS.
    assert set(range(len(run.policy.tokenizer))) - set(run.policy.suppressed_token_ids) == allowed | eos
    torch.manual_seed(0)
    samples = [run.modality.decode(row, None) for row in run.train_rows[:4]]
    ctx = StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward)
    batch = run.source.collect(ctx, samples, run.policy.encode_prompts(samples))
    sampled = batch.completion_ids[batch.completion_mask.bool()].tolist()
    assert len(sampled) >= 4 * 8 and set(sampled) <= allowed | eos
    assert all(parse_action_bins(text) for text in batch.completions if text)  # decoded text is action tokens


def test_robot_reach_grpo_two_steps(tiny_vla_dir, tmp_path):
    summary = train(robot_preset(tiny_vla_dir, tmp_path / "run"))
    assert summary["steps"] == 2 and summary["seconds_per_step"] > 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert -1.0 <= record["reward/robot_reach_progress"] <= 1.0
        assert 0.0 <= record["reward/robot_action_format"] <= 1.0
        assert record["rollout/mean_length"] <= 2 * CHUNK + 1 and record["rollout/sequences"] == 16
    assert -1.0 <= summary["heldout_accuracy_after"] <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "step_2" / "model" / "model.safetensors").is_file()
