"""Fast learning checks for recipe families that had none: GUI click grounding (GuirlVG) and label-free MM-UPT.
Each is a short run of the shipped recipe (its loss, advantage, KL and sampling; CPU sizes) from a seconds-sized warm
start, whose reward must rise by a margin that a zeroed gradient (no change) or a flipped sign (a fall) cannot reach.
Seeded, one thread. The 3-seed held-out evidence is benchmarks/learning*.py, not this file. RLIR has no test here: its
IDM reward did not rise within a test's budget (see the RLIR note below).

Where the recipe's own reward moves too slowly for a seconds-long test (GuirlVG's in-box reward: 0.46 -> 0.42 over 40
steps as shipped, benchmarks/results/learning_modalities.md), the reward is a fixed target read through the same path
(as tests/test_learning.py and tests/test_learning_audio.py do).
"""
from __future__ import annotations

import json

from conftest import REPO, tiny_overrides
from mmpost.config import load_config
from mmpost.registry import MODEL_ZOO, REWARDS
from mmpost.trainer import train


def _curve(out, key: str) -> list[float]:
    return [json.loads(line)[key] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _rise(values: list[float], first: int = 3, last: int = 5) -> float:
    """Mean of the last `last` values minus the mean of the first `first`."""
    return sum(values[-last:]) / last - sum(values[:first]) / first


@REWARDS.register("test_learning_clicks_left_half")
def clicks_left_half(completions, samples, **_):
    """1.0 for a click in the left half of the screen, read as GuirlVG's rewards read a click: the answer's point in
    the model's answer convention, converted by the GUI modality's geometry to normalised image units."""
    from mmpost.modalities.gui.processing import convert_point
    from mmpost.modalities.gui.rewards import gui_info, predicted_point

    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        point, info = predicted_point(completion), gui_info(sample)
        if point is None:
            scores.append(0.0)
            continue
        x, _ = convert_point(point, info["coordinates"], "normalized", original_size=tuple(info["image_size"]),
                             model_size=tuple(info["model_size"]))
        scores.append(1.0 if x < 0.5 else 0.0)
    return scores


def test_guirlvg_moves_clicks_towards_reward(tmp_path):
    import mmpost.tasks.gui_click  # noqa: F401  (registers the zoo entry)

    warm = MODEL_ZOO.get("tiny-qwen2.5-vl-gui")(tmp_path / "warm", steps=WARM_GUI)
    out = tmp_path / "run"
    config = load_config(REPO / "recipes" / "guirlvg.yaml", tiny_overrides(warm, out, **{
        "train.steps": GUI_STEPS, "optim.lr": 2e-3, "rollout.max_new_tokens": 16, "rollout.num_generations": 8, "eval.heldout": "false",
        "eval.diagnostics_every": 0, "train.save_every": 0}))
    config.rewards = [{"name": "test_learning_clicks_left_half"}, {"name": "gui_click_format", "weight": 0.2}]
    train(config)
    reward = _curve(out, "reward/test_learning_clicks_left_half")
    assert _rise(reward) > 0.2, reward


WARM_GUI, GUI_STEPS = 120, 16


def test_mm_upt_raises_its_vote_reward(tmp_path):
    """MM-UPT as shipped (the majority-vote reward, no labels) at CPU sizes: agreement with the group's vote must rise
    (the reward the method optimises; whether that helps accuracy is the benchmark's question)."""
    import mmpost.tasks.mm_upt  # noqa: F401  (registers the zoo entry)

    warm = MODEL_ZOO.get("tiny-qwen2.5-vl-mmupt")(tmp_path / "warm", steps=WARM_MM_UPT)
    out = tmp_path / "run"
    train(load_config(REPO / "recipes" / "mm_upt.yaml", tiny_overrides(warm, out, **{
        "train.steps": MM_UPT_STEPS, "rollout.num_generations": 10, "rollout.max_new_tokens": 16, "algorithm.mini_batches": 1,
        "optim.lr": 1e-3, "data.task_args": "{train_size: 64}", "eval.heldout": "false", "eval.diagnostics_every": 0,
        "train.save_every": 0})))
    reward = _curve(out, "reward/mm_upt_majority_vote")
    assert _rise(reward) > 0.2, reward


WARM_MM_UPT, MM_UPT_STEPS = 25, 10


# RLIR (recipes/rlir_diffusion.yaml as shipped, from its shipped warm start, 8 prompts × 8 chains): 20 steps in 53 s
# left the IDM reward where it started (first 3 steps 0.36, last 5 0.38; single steps 0.27-0.56), and with 4
# denoising steps per chain 16 steps went 0.13 -> 0.17. Its benchmark rise (0.42 -> 0.64, first 10 -> last 10 steps)
# takes 60 steps, about 150 s here: not a fast test. tests/test_denoising_policy.py::
# test_flow_grpo_updates_raise_a_brightness_reward covers the same denoising GRPO update with a learnable reward.
