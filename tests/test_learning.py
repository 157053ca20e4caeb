"""Fast learning checks: a short run from the seconds-sized warm start whose reward (or demonstration loss) must improve.

Each would fail if learning broke (a flipped sign, a detached loss, a wrong advantage, a source that drops its rows,
a reward the engine never sees), not only if the code crashed. Seeded, 1 thread. The reward is one fixed answer
("red" on colour questions), which a working policy-gradient update makes more likely within a dozen steps; the
task's own accuracy moves too slowly from this warm start for a seconds-long test (measured: 16 steps of GRPO on
colour questions from the 60-step warm start took the sampled accuracy from 0.05 to 0.11). The GRPO and ViSurf
families are covered the same way by tests/test_recipes.py::test_rl_moves_the_policy_towards_reward, SFT by
tests/test_recipes.py::test_sft_teaches_the_model_to_read_images. The 3-seed held-out evidence is
benchmarks/learning*.py, not this file.
"""
from __future__ import annotations

import json

from conftest import REPO, tiny_overrides
from mmpost.config import load_config
from mmpost.registry import REWARDS
from mmpost.trainer import train


@REWARDS.register("test_learning_answers_red")
def answers_red(completions, samples, **_):
    return [1.0 if "<answer>red</answer>" in c else 0.0 for c in completions]


def test_chord_moves_the_policy_towards_reward(warm_vl_dir, tmp_path):
    """CHORD as shipped (μ warms up from 0, so its RL term carries the first steps) on the fixed-answer reward."""
    out = tmp_path / "chord"
    config = load_config(REPO / "recipes" / "chord.yaml", tiny_overrides(warm_vl_dir, out, **{
        "train.steps": 12, "data.task_args": "{kinds: [color]}", "eval.heldout": "false", "eval.diagnostics_every": 0,
        "optim.lr": "1e-3"}))  # the step this test was written for, independent of the recipe's default
    config.rewards = [{"name": "test_learning_answers_red"}, {"name": "answer_tag_format", "weight": 0.1}]
    train(config)
    reward = [json.loads(line)["reward/test_learning_answers_red"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(reward[-3:]) / 3 > sum(reward[:3]) / 3 + 0.25, reward


def test_hpt_switches_failed_groups_to_the_demonstration_and_learns_it(warm_vl_dir, tmp_path):
    """HPT as shipped on colour questions the warm start mostly gets wrong: the groups with no correct rollout train
    the demonstration (SFT), and its loss must fall."""
    out = tmp_path / "hpt"
    train(load_config(REPO / "recipes" / "hpt.yaml", tiny_overrides(warm_vl_dir, out, **{
        "train.steps": 12, "data.task_args": "{kinds: [color]}", "eval.heldout": "false", "eval.diagnostics_every": 0,
        "optim.lr": "1e-3"})))  # the step this test was written for, independent of the recipe's default
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    switched = [m["hpt/sft_fraction"] for m in metrics]
    sft = [m["loss/sft"] for m in metrics if m.get("loss/sft") is not None]
    # Measured: 0.67 of the groups switched on average; the SFT loss fell from 0.72 (first 3) to 0.33 (last 3).
    assert sum(switched) / len(switched) > 0.4, switched
    assert sum(sft[-3:]) / 3 < 0.8 * sum(sft[:3]) / 3, sft
