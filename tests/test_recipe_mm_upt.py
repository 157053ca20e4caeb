"""recipes/mm_upt.yaml: MM-UPT's real-scale settings, the tiny CPU preset end to end, and the engine handing the
majority-vote reward each completion's group (rewards recomputed by hand from the sampled completions)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import REPO
from mmpost.builder import build_run, validate
from mmpost.config import load_config
from mmpost.experience import StepContext
from mmpost.scoring import score_batch
from mmpost.tasks.mm_upt import majority_answer, vote_answer
from mmpost.trainer import train

RECIPE = REPO / "recipes" / "mm_upt.yaml"
# The tiny CPU preset named in the recipe's header comment (model and output paths added per test).
PRESET = ["train.steps=2", "data.prompts_per_step=2", "rollout.num_generations=4", "rollout.max_new_tokens=12",
          "algorithm.mini_batches=1", "optim.lr=1e-3", "data.task_args.train_size=16", "data.heldout_size=8",
          "train.threads=1", "train.save_every=0"]


def preset(model_dir: Path, out: Path, *extra: str):
    return load_config(RECIPE, PRESET + [f"model.path={model_dir}", "model.zoo=null", f"train.output_dir={out}",
                                         "train.progress=false", *extra])


def test_recipe_holds_mm_upts_settings():
    text = RECIPE.read_text()
    assert text.splitlines()[0] == "# mmpost train recipes/mm_upt.yaml"
    assert " ".join(PRESET[:5]) in " ".join(text.replace("\\\n#", " ").split())  # the preset is documented
    config = load_config(RECIPE)
    r, a, o = config.rollout, config.algorithm, config.optim
    assert (r.num_generations, r.temperature, r.top_p) == (10, 0.7, 0.99)
    assert (a.kl_coef, a.kl_estimator, a.kl_in_reward, a.advantage, a.advantage_args["eps"]) == (1e-2, "k3", False, "grpo", 1e-6)
    assert a.policy_loss_args == {"clip_low": 0.2, "clip_high": 0.3, "dual_clip_c": 3.0}
    assert (o.lr, o.weight_decay, o.warmup_steps, o.max_grad_norm) == (1e-6, 1e-2, 0, 1.0)
    assert (config.data.prompts_per_step // a.mini_batches, a.ppo_epochs) == (128, 1)  # global batch 128 of 512
    assert [(s.name, s.weight, s.args) for s in config.reward_specs()] == [
        ("mm_upt_majority_vote", 1.0, {"none_can_win": True})]  # one reward, no format reward
    assert config.data.task == "digit_sum" and "reward: mm_upt_majority_vote (weight 1.0)" in validate(config)


def test_engine_gives_the_vote_its_groups(tiny_vl_dir, tmp_path):
    run = build_run(preset(tiny_vl_dir, tmp_path / "run", "rollout.num_generations=6", "eval.heldout=false"))
    assert run.task.accuracy_reward == "mm_upt_label_accuracy" and "answer" not in run.train_rows[0]
    torch.manual_seed(0)
    samples = [run.modality.decode(run.train_rows[i], None) for i in (0, 1, 2)]
    ctx = StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward)
    batch = run.source.collect(ctx, samples, run.policy.encode_prompts(samples))
    batch.reward_parts, _ = score_batch(batch, run.rewards)
    expected = []
    for row, text in enumerate(batch.completions):
        group = [vote_answer(batch.completions[j]) for j in range(len(batch)) if batch.group_ids[j] == batch.group_ids[row]]
        expected.append(1.0 if vote_answer(text) == majority_answer(group) else 0.0)
    # Random-model completions rarely hold equivalent-but-different strings, so exact equality is the grade here.
    assert batch.reward_parts["mm_upt_majority_vote"].tolist() == expected
    assert sum(expected) >= 3  # at least the winner of each of the 3 groups agrees with itself


def test_tiny_preset_trains(tiny_vl_dir, tmp_path):
    summary = train(preset(tiny_vl_dir, tmp_path / "run"))
    assert summary["steps"] == 2 and summary["seconds_per_step"] > 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 < record["reward/mm_upt_majority_vote"] <= 1.0  # someone always agrees with the winner
        assert record["loss/kl_coef"] == pytest.approx(1e-2) and "loss/kl" in record
        assert record["rollout/sequences"] == 8 and record["rollout/mean_length"] <= 12
    assert 0.0 <= summary["heldout_accuracy_before"] <= 1.0  # measured against the hidden held-out labels
    assert (Path(summary["checkpoint"]) / "model" / "model.safetensors").is_file()
