"""RLIR with a diffusion world model: the frame generator, the IDM rewards on generated frames, and the CPU preset
of recipes/rlir_diffusion.yaml through mmpost.train."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mmpost
from mmpost.config import load_config
from mmpost.tasks.world_models.diffusion_rewards import (
    forced_action_accuracy, idm_exact_frames, idm_gold_exact_frames, idm_soft_frames, pixel_mae_frames,
)
from mmpost.tasks.world_models.diffusion_wm import (
    ActionConditionedFrameModel, frames_to_model, frames_to_uint8, pretrain_frame_model, sample_frames, trajectory_chunks,
)
from mmpost.tasks.world_models.gridworld import collect_trajectories, render

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "rlir_diffusion.yaml"
torch.set_num_threads(1)


def test_idm_rewards_on_hand_made_frames():
    context = render((3, 3))[None]  # uint8 [1, 8, 8]
    right, stay = render((3, 4)), render((3, 3))
    sample = {"id": "s", "context_frames": context, "actions": [4, 1], "target_frames": np.stack([right, render((2, 4))])}
    true_frames = frames_to_model(np.stack([right, render((2, 4))]))  # right, then up: what the actions do
    wrong_frames = frames_to_model(np.stack([stay, stay]))  # nothing moves: the IDM reads "stay" twice
    half = frames_to_model(np.stack([right, right]))  # right, then stay: only the first frame follows its action
    assert idm_exact_frames([true_frames, wrong_frames, half], [sample] * 3) == [1.0, 0.0, 0.5]
    assert idm_gold_exact_frames([true_frames], [sample]) == [1.0]
    soft = idm_soft_frames([true_frames, wrong_frames], [sample] * 2)
    assert soft[0] > 0.9 and soft[1] < 0.1
    # MAE: exact frames 0; all-dark frames miss one lit pixel of 64 per frame -> 1/64.
    dark = -torch.ones(2, 8, 8)
    assert pixel_mae_frames([true_frames, dark], [sample] * 2) == pytest.approx([0.0, 1 / 64])
    with pytest.raises(ValueError, match="do not match"):
        idm_exact_frames([torch.zeros(3, 8, 8)], [sample])


def test_frame_model_conditions_on_context_and_actions_and_samples_in_chunks():
    torch.manual_seed(0)
    model = ActionConditionedFrameModel(num_frames=2, context_frames=1).eval()
    context = frames_to_model(np.stack([render((1, 1)), render((5, 5))])[:, None])
    actions = torch.tensor([[1, 2, 3, 4], [0, 0, 1, 1]])
    first = sample_frames(model, context, actions, steps=3, generator=torch.Generator().manual_seed(0))
    again = sample_frames(model, context, actions, steps=3, generator=torch.Generator().manual_seed(0))
    assert first.shape == (2, 4, 8, 8) and torch.equal(first, again)  # noise_level 0: determined by the start noise
    other = sample_frames(model, context, torch.tensor([[4, 4, 4, 4], [0, 0, 1, 1]]), steps=3,
                          generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(first[0], other[0]) and torch.allclose(first[1], other[1])  # row 0's actions matter
    with pytest.raises(ValueError, match="multiple"):
        sample_frames(model, context, actions[:, :3], steps=2)
    with pytest.raises(ValueError, match="discrete actions"):
        model(torch.zeros(2, 2, 8, 8), 500.0, context=context, actions=torch.tensor([[0, 9], [0, 0]]))
    continuous = ActionConditionedFrameModel(num_frames=1, action_kind="continuous", action_dim=2)
    assert continuous(torch.zeros(2, 1, 8, 8), 500.0, context=context, actions=torch.zeros(2, 1, 2)).shape == (2, 1, 8, 8)
    assert frames_to_uint8(frames_to_model(torch.tensor([0, 255], dtype=torch.uint8))).tolist() == [0, 255]


def test_discrete_actions_enter_through_summed_per_frame_embedding_rows():
    torch.manual_seed(0)
    model = ActionConditionedFrameModel(num_frames=2)
    table = model.action_embedding.weight  # [F * A, D] = [10, 64]
    embedded = model.embed_actions(torch.tensor([[2, 4], [0, 0]]))
    # Row f*A + a_f for frame f: (2) + (5 + 4), and (0) + (5 + 0).
    assert torch.allclose(embedded, torch.stack([table[2] + table[9], table[0] + table[5]]))
    assert 0.8 < float(table.detach().std()) < 1.2  # nn.Embedding's N(0, 1) init, as diffusers' num_class_embeds
    assert isinstance(ActionConditionedFrameModel(action_encoder="mlp").action_embedding, torch.nn.Sequential)
    with pytest.raises(ValueError, match="action_encoder"):
        ActionConditionedFrameModel(action_kind="continuous", action_encoder="embedding")


def test_embedding_encoder_makes_the_sft_generator_follow_its_action_and_the_mlp_does_not():
    # The diagnosis of issue #5: after the same short flow-matching SFT, the MLP-conditioned generator reads back its
    # action at chance whatever action it is given (RL has nothing action-dependent to reinforce); the embedding does not.
    data = collect_trajectories(256, 8, seed=0, split="world_model")
    held = collect_trajectories(64, 1, seed=0, split="heldout")["frames"][:, :1]
    accuracy = {}
    for encoder in ("embedding", "mlp"):
        torch.manual_seed(0)
        model = ActionConditionedFrameModel(action_encoder=encoder)
        pretrain_frame_model(model, data, steps=80, lr=2e-3, seed=0)
        accuracy[encoder] = float(np.mean(forced_action_accuracy(model.eval(), held, steps=8)))
    assert accuracy["mlp"] < 0.3  # ~0.22: the base rate of a 5-way read-out of action-blind frames
    assert accuracy["embedding"] > accuracy["mlp"] + 0.15  # ~0.46
    with pytest.raises(ValueError, match="uint8"):
        forced_action_accuracy(model, held[:, 0])


def test_flow_matching_pretraining_fits_ground_truth_windows():
    data = collect_trajectories(32, 3, seed=0, split="world_model")
    chunks = trajectory_chunks(data, num_frames=2, context_frames=1)
    assert chunks["context"].shape == (64, 1, 8, 8) and chunks["target"].shape == (64, 2, 8, 8)
    assert torch.equal(chunks["actions"][:32], torch.as_tensor(data["actions"][:, :2]))
    torch.manual_seed(0)
    model = ActionConditionedFrameModel(num_frames=2)
    losses = pretrain_frame_model(model, data, steps=30, lr=2e-3, seed=0, batch_size=32)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_cpu_preset_runs_with_gold_metrics_and_exact_rescoring(tmp_path, monkeypatch):
    from mmpost.registry import MODEL_ZOO

    # Two jointly generated frames and a short pre-training keep the preset small; the recipe uses F = 1, 80 steps.
    builder = MODEL_ZOO.get("tiny-diffusion-world-model-sft")
    monkeypatch.setitem(MODEL_ZOO._entries, "tiny-diffusion-world-model-sft",
                        lambda out, **kw: builder(out, frames=2, steps=5, num_steps=4, **kw))
    config = load_config(RECIPE, [
        f"model.path={tmp_path / 'wm'}", f"train.output_dir={tmp_path / 'run'}", "train.steps=2", "train.progress=false",
        "data.task_args.frames=2", "data.task_args.heldout_size=8", "data.prompts_per_step=2", "rollout.num_generations=4",
        "rollout.max_new_tokens=4", "algorithm.drop_zero_variance_groups=false",
        "algorithm.mini_batches=2"])  # two mini-batches: the trainer re-scores old log-probs and reports the mismatch
    summary = mmpost.train(config)
    assert summary["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/mean" in r]
    for row in steps:
        assert row["rollout/logprob_mismatch"] < 1e-5
        for key in ("reward/idm_exact_frames", "reward/idm_gold_exact_frames", "reward/pixel_mae_frames"):
            assert 0.0 <= row[key] <= 1.0
        assert row["reward/mean"] == pytest.approx(row["reward/idm_exact_frames"])  # gold metrics have weight 0
        assert row["loss/kl"] >= 0
    assert (Path(summary["checkpoint"]) / "model" / "mmpost_generator.json").is_file()
    assert 0.0 <= summary["heldout_accuracy_before"] <= 1.0
