"""The RLIR AR world-model recipe: its tiny CPU preset trains through `mmpost.train`, re-scored log-probs equal the
sampling ones, frame-level GRPO gives per-token advantages, and a run stopped mid-way resumes and finishes."""
import json

import pytest
import torch

from conftest import REPO
from mmpost.builder import validate
from mmpost.config import load_config
from mmpost.trainer import train

RECIPE = REPO / "recipes" / "rlir_ar.yaml"
FRAMES = 2


@pytest.fixture(scope="module")
def tiny_world_model(tmp_path_factory):
    """The tiny AR world model after a 40-step SFT through the engine (seconds): it already writes whole frames, so
    rewards vary within groups and the update has a signal (the random init ends at once and scores 0 everywhere)."""
    from mmpost.warmstart import sft_warm_start

    return sft_warm_start(tmp_path_factory.mktemp("arwm") / "model", base_zoo="tiny-ar-world-model", task="rlir_ar", seed=0,
                          steps=40, lr=3e-3, prompts_per_step=8,
                          task_args={"train_split": "world_model", "train_size": 160, "frames": FRAMES},
                          extra={"rollout": {"max_new_tokens": FRAMES * 65 + 1}, "train": {"threads": 1}})


def preset(model_dir, output_dir, **extra) -> list[str]:
    """The tiny CPU preset of recipes/rlir_ar.md."""
    values = {
        "model.path": str(model_dir), "model.zoo": "null", "train.output_dir": str(output_dir), "train.threads": 1,
        "train.progress": "false", "train.steps": 3, "data.prompts_per_step": 2, "rollout.num_generations": 4,
        "data.task_args.frames": FRAMES, "data.task_args.train_size": 8, "data.task_args.heldout_size": 2,
        "data.heldout_size": 2, "rollout.max_new_tokens": FRAMES * 65 + 1, "eval.every_n_steps": 0,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def records_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_recipe_first_line_is_its_command_and_it_validates():
    assert RECIPE.read_text().splitlines()[0] == "# mmpost train recipes/rlir_ar.yaml"
    config = load_config(RECIPE)
    checked = validate(config)
    assert "modality: frames" in checked and "experience_source: rlir" in checked
    assert {"reward: idm_soft (weight 1.0)", "reward: idm_gold_exact (weight 0.0)", "reward: pixel_mae (weight 0.0)"} <= set(checked)
    assert config.algorithm.kl_coef > 0 and config.optim.lr <= 3e-4  # the guards the notes ask for (1e-3 collapsed)


def test_tiny_preset_frame_level_update_with_exact_rescoring(tiny_world_model, tmp_path):
    run = tmp_path / "run"
    summary = train(load_config(RECIPE, preset(tiny_world_model, run, **{
        "algorithm.ppo_epochs": 2, "algorithm.source_args.advantage_level": "frame", "train.steps": 2})))
    assert summary["steps"] == 2 and summary["heldout_accuracy_after"] is not None
    records = records_of(run)
    for record in records:
        # The old-policy pass re-scores the sampled tokens under the same vocabulary mask and temperature.
        assert record["rollout/logprob_mismatch"] < 1e-4
        assert {"reward/idm_soft", "reward/idm_exact", "reward/idm_gold_exact", "reward/pixel_mae"} <= set(record)
        assert 0.0 <= record["reward/idm_exact"] <= 1.0 and 0.0 <= record["reward/pixel_mae"] <= 1.0
        assert record["rollout/mean_length"] > 64  # whole frames, so the re-scoring check covers long completions
        assert record["rlir/frame_advantage_abs_mean"] >= 0.0 and torch.isfinite(torch.tensor(record["loss/total"]))
    assert max(r["rlir/frame_advantage_abs_mean"] for r in records) > 0.0  # some group disagreed on some frame
    from safetensors.torch import load_file

    initial = load_file(str(tiny_world_model / "model.safetensors"))
    final = load_file(str(run / "checkpoints" / "step_2" / "model" / "model.safetensors"))
    assert any(not torch.equal(initial[k], final[k]) for k in initial)


def test_frame_level_advantages_are_per_token(tiny_world_model):
    """The source replaces the engine's [N] advantages by [N, T]: each frame's tokens carry its frame's advantage."""
    from mmpost.builder import build_run
    from mmpost.experience import StepContext
    from mmpost.scoring import score_batch, total_reward
    from mmpost.trainer import compute_advantages, decode_samples

    config = load_config(RECIPE, preset(tiny_world_model, "/tmp/unused", **{"algorithm.source_args.advantage_level": "frame",
                                                                           "algorithm.kl_coef": 0, "eval.heldout": "false"}))
    run = build_run(config)
    samples, _ = decode_samples(run, list(run.train_rows[:2]))
    ctx = StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward, [r.name for r in run.rewards])
    batch = run.source.collect(ctx, samples, run.policy.encode_prompts(samples))
    batch.reward_parts, _ = score_batch(batch, run.rewards)
    batch.rewards = total_reward(batch.reward_parts, run.rewards, len(batch))
    batch.advantages, batch.keep, _ = compute_advantages(batch, run.config.algorithm)
    batch, metrics = run.source.after_advantages(ctx, batch)
    assert batch.advantages.shape == batch.completion_ids.shape and "rlir/frame_score_mean" in metrics
    # Within a row the advantage changes only where a frame separator opens the next frame.
    vocab = run.policy.tokenizer.get_vocab()
    separators = torch.tensor([vocab[f"<frame_{j}>"] for j in range(2, FRAMES + 1)])
    changes = batch.advantages[:, 1:] != batch.advantages[:, :-1]
    assert torch.isin(batch.completion_ids[:, 1:][changes], separators).all()


def test_resume_mid_run_continues_and_finishes(tiny_world_model, tmp_path):
    run = tmp_path / "run"
    stopped = train(load_config(RECIPE, preset(tiny_world_model, run, **{"train.save_every": 1, "train.stop_after": 2})))
    assert stopped == {"stopped_at": 2}
    summary = train(load_config(RECIPE, preset(tiny_world_model, run, **{"train.resume": "auto", "train.save_every": 1})))
    assert summary["steps"] == 3
    assert [r["step"] for r in records_of(run)] == [1, 2, 3]
    assert (run / "checkpoints" / "step_3" / "model" / "model.safetensors").is_file()
