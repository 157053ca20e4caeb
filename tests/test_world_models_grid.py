"""DotGrid ground truth, disjoint splits, the inverse dynamics model, frame tokens and the RLIR reward maths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmpost.modalities.frames.processing import (
    FrameVocabulary, completion_token_names, dequantize, frames_from_token_names, prompt_token_names, quantize,
)
from mmpost.tasks.world_models.advantages import grpo_frame, token_advantages
from mmpost.tasks.world_models.gridworld import (
    SPLITS, DotGridEnv, collect_trajectories, move, render, trajectory_split, unambiguous_actions,
)
from mmpost.tasks.world_models.idm import idm_accuracy, idm_action_probs, load_idm, save_idm, train_idm
from mmpost.tasks.world_models.rewards import continuous_action_reward, transition_stack

torch.set_num_threads(1)


# -- environment ---------------------------------------------------------------------------------
def test_env_moves_the_dot_and_walls_stop_it():
    env = DotGridEnv()
    observation, info = env.reset(options={"position": (0, 3)})
    assert observation.shape == (8, 8) and observation.dtype == np.uint8
    assert observation[0, 3] == 255 and observation.sum() == 255
    observation, _, terminated, truncated, info = env.step(2)  # down
    assert info["position"] == (1, 3) and observation[1, 3] == 255 and info["moved"]
    env.reset(options={"position": (0, 0)})
    _, _, _, _, info = env.step(1)  # up into the wall: stays, indistinguishable from "stay"
    assert info["position"] == (0, 0) and not info["moved"]
    assert unambiguous_actions((0, 0)) == [0, 2, 4]
    assert move((7, 7), 4) == (7, 7) and move((3, 3), 3) == (3, 2)


def test_render_scales_cells_and_rejects_outside_positions():
    frame = render((1, 2), cell=2)
    assert frame.shape == (16, 16) and frame[2:4, 4:6].min() == 255 and frame.sum() == 4 * 255
    with pytest.raises(ValueError, match="outside"):
        render((8, 0))


def test_collected_trajectories_follow_the_env_and_have_no_ambiguous_moves():
    data = collect_trajectories(20, 5, seed=3, split="rl")
    assert data["frames"].shape == (20, 6, 8, 8) and data["actions"].shape == (20, 5)
    for frames, actions, start in zip(data["frames"], data["actions"], data["starts"]):
        position = tuple(start)
        assert (frames[0] == render(position)).all()
        for t, action in enumerate(actions):
            assert action in unambiguous_actions(position)
            position = move(position, action)
            assert (frames[t + 1] == render(position)).all()
    again = collect_trajectories(20, 5, seed=3, split="rl")
    assert (again["frames"] == data["frames"]).all()  # deterministic


def test_splits_are_disjoint_by_construction():
    seen: dict[tuple, str] = {}
    for split in SPLITS:
        data = collect_trajectories(150, 3, seed=0, split=split)
        for start, actions in zip(data["starts"], data["actions"]):
            key = (tuple(start), tuple(actions))
            assert trajectory_split(*key) == split
            assert seen.setdefault(key, split) == split, f"trajectory {key} is in {seen[key]} and {split}"
    # The same seed draws different trajectories per split, and each split is non-trivial.
    assert len(seen) > 400
    with pytest.raises(ValueError, match="unknown split"):
        collect_trajectories(1, 3, seed=0, split="train")


# -- inverse dynamics model ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_idm():
    return train_idm(collect_trajectories(256, 8, seed=0, split="idm"), steps=100, seed=0)


def test_idm_learns_ground_truth_actions(trained_idm):
    heldout = collect_trajectories(64, 8, seed=0, split="heldout")
    assert idm_accuracy(trained_idm, heldout) == 1.0
    probs = idm_action_probs(trained_idm, torch.as_tensor(heldout["frames"][:4]))
    assert probs.shape == (4, 8, 5)
    assert torch.allclose(probs.sum(-1), torch.ones(4, 8), atol=1e-5)


def test_continuous_idm_head_recovers_displacements():
    model = train_idm(collect_trajectories(256, 8, seed=0, split="idm"), steps=100, seed=0, head="continuous")
    assert idm_accuracy(model, collect_trajectories(32, 8, seed=1, split="heldout")) == 1.0


def test_idm_save_load_round_trip(tmp_path, trained_idm):
    folder = save_idm(trained_idm, tmp_path / "idm")
    assert sorted(p.name for p in folder.iterdir()) == ["idm_config.json", "model.safetensors"]
    loaded = load_idm(folder)
    frames = torch.as_tensor(collect_trajectories(4, 3, seed=0, split="rl")["frames"])
    assert torch.equal(idm_action_probs(loaded, frames), idm_action_probs(trained_idm, frames))
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_idm(folder)


# -- frame tokens ----------------------------------------------------------------------------------
def test_quantize_and_dequantize_invert_on_levels():
    values = np.array([0, 60, 100, 200, 255], dtype=np.uint8)
    assert quantize(values, 2).tolist() == [0, 0, 0, 1, 1]  # round(v/255): 100/255 = 0.39 -> 0, 200/255 = 0.78 -> 1
    assert quantize(values, 4).tolist() == [0, 1, 1, 2, 3]  # round(v·3/255): 0.71 -> 1, 1.18 -> 1, 2.35 -> 2
    assert dequantize(np.array([0, 1, 2, 3]), 4).tolist() == [0, 85, 170, 255]


def test_prompt_and_completion_layout():
    vocabulary = FrameVocabulary(levels=2, max_frames=4)
    context = render((0, 0), grid=2)[None]  # 2 x 2 frame: [[255, 0], [0, 0]]
    assert prompt_token_names(context, [4, 0], vocabulary) == [
        "<s>", "<ctx>", "<p1>", "<p0>", "<p0>", "<p0>", "<a1_right>", "<a2_stay>", "<frame_1>"]
    frames = np.stack([render((0, 1), grid=2), render((0, 1), grid=2)])
    assert completion_token_names(frames, 2) == ["<p0>", "<p1>", "<p0>", "<p0>", "<frame_2>", "<p0>", "<p1>", "<p0>", "<p0>"]
    with pytest.raises(ValueError, match="max_frames"):
        prompt_token_names(context, [0] * 5, vocabulary)


def test_decoding_tokens_to_frames_handles_malformed_and_short_completions():
    frame_a, frame_b = render((0, 1), grid=2), render((1, 1), grid=2)
    names = completion_token_names(np.stack([frame_a, frame_b]), 2) + ["</s>", "<p1>"]
    decoded = frames_from_token_names(names, frame_shape=(2, 2), num_frames=2, levels=2)
    assert (decoded[0] == frame_a).all() and (decoded[1] == frame_b).all()
    # Frame 1 one pixel short, frame 2 fine, frame 3 never generated.
    short = ["<p0>", "<p1>", "<p0>", "<frame_2>", "<p0>", "<p0>", "<p0>", "<p1>"]
    decoded = frames_from_token_names(short, frame_shape=(2, 2), num_frames=3, levels=2)
    assert decoded[0] is None and (decoded[1] == frame_b).all() and decoded[2] is None
    # A stray non-pixel token or an out-of-range level spoils its frame only.
    assert frames_from_token_names(["<p0>", "<a1_up>", "<p0>", "<p0>"], frame_shape=(2, 2), num_frames=1, levels=2) == [None]
    assert frames_from_token_names(["<p0>", "<p2>", "<p0>", "<p0>"], frame_shape=(2, 2), num_frames=1, levels=2) == [None]


def test_transition_stack_marks_transitions_touching_a_missing_frame():
    context = np.zeros((2, 2), np.uint8)
    frame = np.full((2, 2), 255, np.uint8)
    stack, valid = transition_stack(context, [frame, None, frame])
    assert stack.shape == (4, 2, 2) and stack[2].sum() == 0
    assert valid.tolist() == [True, False, False]


# -- reward and advantage maths --------------------------------------------------------------------
def test_continuous_action_reward_by_hand():
    predicted = np.array([[0.0, 1.0], [1.0, 1.0], [0.5, 0.0]])
    target = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    # mse: 0, (1 + 1)/2 = 1, 0.25/2 = 0.125; tau 0.5 -> exp(0), exp(-2), exp(-0.25)
    expected = [1.0, np.exp(-2.0), np.exp(-0.25)]
    assert np.allclose(continuous_action_reward(predicted, target, 0.5), expected)
    with pytest.raises(ValueError, match="tau"):
        continuous_action_reward(predicted, target, 0.0)


def test_grpo_frame_normalises_each_frame_position_within_its_group():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
    groups = torch.tensor([0, 0, 1, 7])
    advantages = grpo_frame(rewards, groups, eps=0.0)
    # Group 0, frame 0: rewards 1, 0 -> mean 0.5, unbiased std sqrt(0.5) -> ±0.5 / 0.7071 = ±0.7071.
    assert torch.allclose(advantages[:2, 0], torch.tensor([0.70710678, -0.70710678]))
    # Singleton groups get 0.
    assert torch.equal(advantages[2:], torch.zeros(2, 2))
    # Group 0, frame 1: both 0 -> the group agrees, advantage 0 (with the default eps).
    assert torch.equal(grpo_frame(rewards, groups)[:2, 1], torch.zeros(2))
    with pytest.raises(ValueError, match="frame_rewards"):
        grpo_frame(rewards[:, 0], groups)


def test_token_advantages_follow_frame_separators():
    separator = 9
    ids = torch.tensor([[5, 5, separator, 5, 5, 2, 0],
                        [5, separator, 5, separator, 5, separator, 5]])
    frame_advantages = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    expected = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0],
                             [0.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]])  # extra frames get the last frame's advantage
    assert torch.equal(token_advantages(ids, frame_advantages, [separator]), expected)


# -- rewards on completions ------------------------------------------------------------------------
def test_idm_rewards_on_ground_truth_broken_and_wrong_completions():
    from mmpost.tasks.world_models.rewards import idm_exact, idm_gold_exact, idm_soft, pixel_mae
    from mmpost.modalities.frames.adapter import FramesModality
    from mmpost.modalities.frames.tiny import build_frame_tokenizer
    from mmpost.tasks.world_models.task import RlirArTask

    task = RlirArTask(frames=3, heldout_size=4)
    samples = task.load("heldout")
    sample = samples[0]
    truth = task.target(sample)
    names = truth.split()
    # Frame 2 (tokens 65..129) cut one pixel short: transitions 1->2 and 2->3 cannot be scored.
    broken = " ".join(names[:65 + 63] + names[65 + 64:])
    # Every generated frame equal to the context: right only where the action was "stay".
    context = sample["context_frames"][-1]
    frozen = " ".join(completion_token_names(np.stack([context] * 3), 2))
    stays = np.mean([a == 0 for a in sample["actions"]])
    completions = [truth, broken, frozen]
    rows = [sample] * 3
    assert idm_exact(completions, rows)[0] == 1.0 and idm_gold_exact(completions, rows)[0] == 1.0
    assert idm_exact(completions, rows)[1] == pytest.approx(1 / 3)  # only transition 0 -> 1 is scored
    # Frozen frames: every transition shows no motion, so the IDM reads "stay" and only the stay actions match.
    assert idm_exact(completions, rows)[2] == pytest.approx(stays)
    soft = idm_soft(completions, rows)
    assert soft[0] > 0.95 and soft[1] < 0.4
    mae = pixel_mae(completions, rows)
    assert mae[0] == 0.0 and mae[1] == pytest.approx(1 / 3)  # frames 1 and 3 exact, the missing frame 2 counts 1.0
    # Token ids decode the same way as text once the modality has attached its id -> name table.
    tokenizer = build_frame_tokenizer()
    decoded = FramesModality().decode(sample)
    FramesModality().encode_prompt(tokenizer, [], decoded)
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    assert idm_exact(["", "", ""], [decoded] * 3, completion_ids=ids) == idm_exact(completions, rows)


def test_frames_modality_rejects_bad_samples_naming_the_field():
    from mmpost.modalities.frames.adapter import FramesModality
    from mmpost.types import DataError

    modality = FramesModality()
    with pytest.raises(DataError, match="'x'.*needs 'context_frames'"):
        modality.decode({"id": "x", "actions": [1]})
    with pytest.raises(DataError, match="'context_frames' values must lie in 0..255"):
        modality.decode({"id": "y", "context_frames": np.full((1, 2, 2), 300), "actions": [1]})
    with pytest.raises(DataError, match="'target_frames' must be \\[2, 2, 2\\]"):
        modality.decode({"id": "z", "context_frames": np.zeros((1, 2, 2)), "actions": [1, 2], "target_frames": np.zeros((1, 2, 2))})


def test_loading_an_idm_leaves_the_global_random_stream_alone(tmp_path):
    from mmpost.tasks.world_models.idm import IDMConfig, InverseDynamicsModel, load_idm, save_idm

    save_idm(InverseDynamicsModel(IDMConfig()), tmp_path / "idm")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_idm(tmp_path / "idm")
    assert torch.equal(torch.rand(3), expected)
