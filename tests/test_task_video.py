"""The synthetic video_motion task: answers agree with the decoded mp4, splits are disjoint, prompts and rewards."""
from __future__ import annotations

import pytest

from mmpost.modalities.video import load_video
from mmpost.registry import REWARDS, TASKS
from mmpost.tasks.video_motion import DIRECTIONS, VideoMotionTask, centroid_direction, random_motion, render
from mmpost.types import Task


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return TASKS.get("video_motion")(cache_dir=tmp_path_factory.mktemp("video_motion"))


@pytest.fixture(scope="module")
def train(task):
    return task.load("train", size=24)


def test_answers_agree_with_the_decoded_mp4(train):
    assert {s["answer"] for s in train} == set(DIRECTIONS)
    for sample in train:
        video = load_video(sample["videos"][0], options={"nframes": 4})
        assert video.frames.shape == (4, 3, 112, 112) and video.backend == "decord"
        assert centroid_direction(video.frames.permute(0, 2, 3, 1).numpy()) == sample["answer"], sample["id"]


def test_square_stays_inside_every_frame():
    import random

    for index in range(200):
        motion = random_motion(random.Random(index))
        for t in range(motion.frames):
            x, y = motion.position(t)
            assert 0 <= x and x + motion.side <= motion.size and 0 <= y and y + motion.side <= motion.size
        clip = render(motion)
        assert (clip != motion.background).any(-1).sum() == motion.frames * motion.side ** 2


def test_deterministic_and_splits_disjoint(task, train, tmp_path):
    again = VideoMotionTask(cache_dir=tmp_path).load("train", size=24)
    assert [s["answer"] for s in again] == [s["answer"] for s in train]
    assert [s["videos"][0].rsplit("/", 1)[1] for s in again] == [s["videos"][0].rsplit("/", 1)[1] for s in train]
    heldout = task.load("heldout") + task.load("test", seed=5, size=16)
    assert len(task.load("heldout")) == 32
    assert not {s["videos"][0] for s in task.load("train")} & {s["videos"][0] for s in heldout}
    with pytest.raises(ValueError, match="unknown split"):
        task.load("validation")


def test_prompt_target_and_default_rewards(task, train):
    sample = train[0]
    assert task.prompt(sample) == [{"role": "user", "content": [
        {"type": "video"}, {"type": "text", "text": "Which direction does the square move? Answer with <answer>...</answer>."}]}]
    assert task.target(sample) == f"<answer>{sample['answer']}</answer>"
    assert isinstance(task, Task) and task.modality == "video" and task.accuracy_reward == "exact_match"
    targets = [task.target(s) for s in train]
    for spec in task.default_rewards:
        assert REWARDS.get(spec["name"])(targets, train) == [1.0] * len(train)
