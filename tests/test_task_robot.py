"""robot_reach: simulator and expert by hand, disjoint splits, demonstrations that score, reward signs."""
import numpy as np
import pytest

from mmpost.modalities.robot import ActionStats, ActionTokenizer
from mmpost.registry import REWARDS, TASKS
from mmpost.tasks.robot_reach import ReachConfig, episode_split, expert_chunk, reach_progress, render, rollout, step

CONFIG = ReachConfig()


def test_step_and_expert_by_hand():
    assert step(np.array([0.5, 0.5]), np.array([0.3, -0.05]), CONFIG).tolist() == pytest.approx([0.6, 0.45])
    assert step(np.array([0.98, 0.01]), np.array([0.1, -0.1]), CONFIG).tolist() == pytest.approx([1.0, 0.0])
    chunk = expert_chunk(np.array([0.0, 0.0]), np.array([0.25, 0.05]), 3, CONFIG)
    np.testing.assert_allclose(chunk, [[0.1, 0.05], [0.1, 0.0], [0.05, 0.0]], atol=1e-12)
    assert rollout(np.array([0.0, 0.0]), chunk, CONFIG)[-1].tolist() == pytest.approx([0.25, 0.05])
    assert reach_progress(np.array([0, 0.0]), np.array([0.1, 0]), np.array([0.2, 0]), np.array([0.4, 0])) == pytest.approx(0.5)
    assert reach_progress(np.array([0, 0.0]), np.array([0, 0.0]), np.array([0.2, 0]), np.array([0.4, 0])) == 0.0


def test_render_marks_robot_and_target():
    image = render(np.array([0.0, 0.0]), np.array([1.0, 1.0]), CONFIG)
    assert image.getpixel((5, 106)) == (40, 80, 220) and image.getpixel((106, 5)) == (220, 40, 40)


def test_samples_demonstrations_and_splits():
    task = TASKS.get("robot_reach")(chunk=4)
    assert task.modality == "robot"
    train = task.load("train", size=40)
    heldout = task.load("heldout", size=10)
    def episodes(samples):  # the first step of an episode holds its start
        return {(tuple(s["proprio"]), tuple(s["target"])) for s in samples if s["id"].endswith("-00")}
    assert all(episode_split(*e) == "train" for e in episodes(train))
    assert all(episode_split(*e) == "heldout" for e in episodes(heldout))
    assert episodes(train) and episodes(heldout) and not episodes(train) & episodes(heldout)
    first = train[0]
    assert len(first["actions"]) == 4 and first["answer"].count("<act_") == 8
    stats = ActionStats.from_dict(first["action_stats"])
    assert stats.low == pytest.approx((-0.1, -0.1)) and stats.high == pytest.approx((0.1, 0.1))
    assert task.load("train", size=3)[2]["answer"] == train[2]["answer"]
    assert "State: x" in task.prompt(first)[0]["content"][1]["text"]


def test_rewards_on_demonstrations_and_bad_chunks():
    task = TASKS.get("robot_reach")(chunk=4)
    samples = task.load("train", size=12)
    targets = [task.target(s) for s in samples]
    progress = REWARDS.get("robot_reach_progress")(targets, samples)
    assert min(progress) > 0.95  # bin centres are within half a bin of the expert's actions
    assert REWARDS.get("robot_action_format")(targets + ["<act_1> hello", "<act_1>"], samples + samples[:2]) == [1.0] * 12 + [0.0, 0.0]
    sample = samples[0]
    tokens = ActionTokenizer.added(ActionStats.from_dict(sample["action_stats"]), _names_only(256))
    away = -np.sign(np.array(sample["target"]) - np.array(sample["proprio"])) * 0.1
    away_text = tokens.to_text(np.tile(away, (4, 1)))
    assert REWARDS.get("robot_reach_progress")([away_text, "garbage"], [sample] * 2)[0] < 0
    assert REWARDS.get("robot_reach_progress")(["garbage"], [sample]) == [0.0]
    assert REWARDS.get("robot_reach_progress")(targets[:2], samples[:2], threshold=0.9) == [1.0, 1.0]
    near = {**sample, "proprio": [0.5, 0.5], "target": [0.7, 0.5],
            "actions": expert_chunk(np.array([0.5, 0.5]), np.array([0.7, 0.5]), 4, CONFIG).tolist()}
    stay = tokens.to_text(np.zeros((4, 2)))  # bin centres 0.0004 from zero: the robot barely moves
    assert REWARDS.get("robot_reach_success")([tokens.to_text(np.array(near["actions"])), stay, "x"], [near] * 3) == [1.0, 0.0, 0.0]


class _names_only:
    """A stand-in tokenizer vocabulary holding only the action tokens (ids = bin numbers)."""

    def __init__(self, n):
        self.vocab = {f"<act_{i}>": i for i in range(n)}

    def get_vocab(self):
        return self.vocab
