"""recipes/audio_grpo.yaml (R1-AQA) and audio_mcq_grpo.yaml (AudioMCQ): settings, the tiny CPU preset, and the
engine's loss under these settings equal to R1-AQA's loss written out by hand (value and gradient)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmpost.builder import build_run, validate
from mmpost.config import load_config
from mmpost.trainer import batched_logprobs, compute_advantages, train
from mmpost.experience import StepContext
from mmpost.logprobs import completion_logprobs
from mmpost.update import StepWeights, micro_batch_loss, normalisers

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "audio_grpo.yaml"
AUDIOMCQ_RECIPE = RECIPE.with_name("audio_mcq_grpo.yaml")
# The tiny CPU preset named in the recipe's header comment.
PRESET = ["train.steps=3", "data.prompts_per_step=2", "rollout.max_new_tokens=16", "optim.lr=1e-3",
          "data.task_args.train_size=16", "data.heldout_size=4", "train.threads=1"]


def preset(tmp_path: Path, *extra: str):
    return load_config(RECIPE, PRESET + [f"model.path={tmp_path / 'tiny-qwen2-audio'}", f"train.output_dir={tmp_path / 'run'}",
                                         f"data.task_args.cache_dir={tmp_path / 'clips'}", "train.progress=false", *extra])


def test_recipe_holds_r1aqas_settings():
    assert RECIPE.read_text().splitlines()[0] == "# mmpost train recipes/audio_grpo.yaml"
    assert "train.steps=3" in RECIPE.read_text()  # the preset is documented where users look
    config = load_config(RECIPE)
    r, a, o = config.rollout, config.algorithm, config.optim
    assert (r.num_generations, r.temperature, r.max_new_tokens) == (8, 1.0, 256)
    assert (a.kl_coef, a.kl_estimator, a.aggregation, a.advantage_args["eps"]) == (0.04, "k3_unclamped", "seq_mean_token_mean", 1e-4)
    assert (a.ppo_epochs, a.mini_batches, a.kl_in_reward) == (1, 1, False)
    assert (o.lr, o.max_grad_norm, o.scheduler) == (1e-6, 1.0, "linear")
    assert [(s.name, s.weight) for s in config.reward_specs()] == [("r1aqa_accuracy", 1.0), ("r1aqa_format", 1.0)]
    assert "reward: r1aqa_format (weight 1.0)" in validate(config)
    mcq = load_config(AUDIOMCQ_RECIPE)
    assert AUDIOMCQ_RECIPE.read_text().splitlines()[0] == "# mmpost train recipes/audio_mcq_grpo.yaml"
    assert (mcq.rollout.temperature, mcq.rollout.top_k, mcq.algorithm.kl_coef) == (1.5, 4, 0.001)
    assert [(s.name, s.weight, s.args) for s in mcq.reward_specs()] == [
        ("audiomcq_accuracy", 2.0, {}), ("answer_tag_format", 0.5, {"single": False})]
    validate(mcq)


def test_cpu_preset_trains_and_checkpoints(tmp_path):
    summary = train(preset(tmp_path))
    assert summary["steps"] == 3
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        assert 0.0 <= record["reward/mean"] <= 2.0
        assert {"reward/r1aqa_accuracy", "reward/r1aqa_format", "loss/kl", "loss/policy"} <= record.keys()
        assert record["rollout/mean_length"] <= 16 and record["rollout/sequences"] == 16
        assert record["loss/kl_coef"] == pytest.approx(0.04)
    checkpoint = Path(summary["checkpoint"])
    assert (checkpoint / "model" / "model.safetensors").is_file() and (checkpoint / "model" / "processor_config.json").is_file()
    assert summary["heldout_accuracy_before"] is not None


def test_engine_loss_equals_r1aqas_loss(tmp_path):
    """R1-AQA grpo_trainer.py: A = (r - mean_g) / (std_g + 1e-4); per-token loss -(exp(lp - sg(lp)) * A - beta * k3);
    masked mean per completion, then mean over completions. The engine under the recipe must give the same
    loss and the same gradient."""
    run = build_run(preset(tmp_path, "rollout.max_new_tokens=6"))
    torch.manual_seed(0)
    samples = [run.modality.decode(run.train_rows[i], None) for i in (0, 1)]
    ctx = StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward)
    batch = run.source.collect(ctx, samples, run.policy.encode_prompts(samples))
    batch.rewards = torch.tensor([0.0, 1, 2, 0, 1, 1, 0, 2, 2, 2, 0, 1, 0, 0, 1, 2])
    batch.advantages, batch.keep, _ = compute_advantages(batch, run.config.algorithm)
    with torch.no_grad():  # move the policy away from the reference so the KL term is not zero
        for parameter in run.unwrapped.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    batch.ref_logprobs = batched_logprobs(run.model, batch, run, reference=True)
    rows = torch.arange(len(batch))

    run.optimizer.zero_grad()
    loss, _ = micro_batch_loss(run.model, run.reference, batch, rows, run.settings, normalisers(batch, rows),
                               StepWeights(rl=1.0, sft=1.0, kl=run.kl_controller.coef))
    loss.backward()
    engine_grads = [p.grad.clone() for p in run.unwrapped.parameters() if p.grad is not None]

    run.optimizer.zero_grad()
    logps, _ = completion_logprobs(run.model, batch, rows, pad_id=run.policy.pad_token_id,
                                   suppressed_token_ids=run.policy.suppressed_token_ids)
    grouped = batch.rewards.view(2, 8)
    advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
    ref, mask = batch.ref_logprobs, batch.completion_mask
    kl = torch.exp(ref - logps) - (ref - logps) - 1
    per_token = -(torch.exp(logps - logps.detach()) * advantages[:, None] - 0.04 * kl)
    expected = ((per_token * mask).sum(1) / mask.sum(1)).mean()
    expected.backward()
    r1aqa_grads = [p.grad.clone() for p in run.unwrapped.parameters() if p.grad is not None]

    torch.testing.assert_close(batch.advantages, advantages)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert float(kl.detach().abs().sum()) > 0 and len(engine_grads) == len(r1aqa_grads)
    for mine, theirs in zip(engine_grads, r1aqa_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-7)
