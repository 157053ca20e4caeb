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


def test_the_model_input_still_shows_the_motion(task, train, tmp_path_factory):
    """What the model is fed (the video modality's default sampling, the processor's patches) undone back to frames:
    the square's centroid sits where the clip put it on each sampled frame, so it moves in the labelled direction
    by speed x (frame index difference) pixels. Guards the decode -> sample -> resize -> patch path of the task."""
    import numpy as np
    from transformers import AutoProcessor

    from mmpost.modalities.image import build_tiny_qwen2_5_vl
    from mmpost.modalities.video import VideoModality
    from mmpost.modalities.video.processing import frames_from_patches
    from mmpost.tasks.video_motion.task import STEP

    processor = AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny")))
    video_processor = processor.video_processor
    modality = VideoModality()
    for sample in train[:8]:
        encoding = modality.encode_prompt(processor, task.prompt(dict(sample)), sample)
        grid = encoding.media["video_grid_thw"][0].tolist()
        indices = sample["decoded"]["video_info"][0]["frame_indices"]
        assert grid == [2, 8, 8] and indices == [0, 2, 5, 7]  # fps 2 of an 8-frame 8-fps clip: 4 frames, 2 temporal patches
        frames = frames_from_patches(encoding.media["pixel_values_videos"], grid, image_mean=video_processor.image_mean,
                                     image_std=video_processor.image_std)
        pixels = (frames * 255).round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        motion = sample["motion"]
        dx, dy = STEP[sample["answer"]]
        for frame, index in zip(pixels, indices):
            mask = np.abs(frame - frame[0, 0]).sum(-1) > 60
            ys, xs = np.nonzero(mask)
            expected_x = motion["start"][0] + dx * motion["speed"] * index + (motion["side"] - 1) / 2
            expected_y = motion["start"][1] + dy * motion["speed"] * index + (motion["side"] - 1) / 2
            assert abs(xs.mean() - expected_x) < 1.0 and abs(ys.mean() - expected_y) < 1.0, (sample["id"], index)
        assert centroid_direction(pixels.astype(np.uint8)) == sample["answer"]
    with pytest.raises(ValueError, match="does not match grid 1x8x8"):
        frames_from_patches(encoding.media["pixel_values_videos"], [1, 8, 8])
