"""Driving tasks: synthetic waypoints by hand, disjoint splits, targets score 1; DriveLM task on the real fixture."""
import math
from pathlib import Path

import pytest

from mmpost.modalities.driving import NUSCENES_CAMERAS, DrivingModality
from mmpost.registry import REWARDS, TASKS
from mmpost.tasks.driving import DrivingScene, arc_point, future_waypoints, render_scene

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "drivelm" / "train_sample.json"


def test_arc_geometry_by_hand():
    assert arc_point(0.0, 7.0) == (0.0, 7.0)
    x, y = arc_point(0.05, 10.0)
    assert x == pytest.approx((1 - math.cos(0.5)) / 0.05) and y == pytest.approx(math.sin(0.5) / 0.05)
    assert arc_point(-0.05, 10.0)[0] == pytest.approx(-x)  # negative curvature bends left
    assert future_waypoints(DrivingScene(speed=4.0, curvature=0.0)) == [(0.0, 2.0), (0.0, 4.0), (0.0, 6.0), (0.0, 8.0), (0.0, 10.0), (0.0, 12.0)]


def test_scene_is_drawn_with_the_ego_car():
    image = render_scene(DrivingScene(speed=5.0, curvature=0.02))
    assert image.size == (112, 112) and image.getpixel((56, int(112 * 0.85))) == (220, 40, 40)


def test_waypoint_task_samples_targets_and_splits():
    task = TASKS.get("driving_waypoints")()
    assert task.modality == "driving" and task.accuracy_reward == "driving_trajectory"
    train = task.load("train", size=64)
    heldout = task.load("heldout", size=16)
    assert not {(s["ego_state"]["speed"], s["curvature"]) for s in train} & {(s["ego_state"]["speed"], s["curvature"]) for s in heldout}
    samples = [DrivingModality().decode(s) for s in train[:4]]
    targets = [task.target(s) for s in samples]
    assert REWARDS.get("driving_trajectory")(targets, samples) == pytest.approx([1.0] * 4)
    assert REWARDS.get("answer_tag_format")(targets, samples) == [1.0] * 4
    content = task.prompt(samples[0])[0]["content"]
    assert content[0]["text"] == "BEV: " and content[1] == {"type": "image"}
    assert f"speed {train[0]['ego_state']['speed']:.1f} m/s" in content[2]["text"]
    assert task.load("train", size=2)[1]["answer"] == train[1]["answer"]


def test_drivelm_task_on_the_real_fixture():
    assert FIXTURE.is_file(), f"the real DriveLM fixture is missing: {FIXTURE}"
    task = TASKS.get("drivelm")(path=str(FIXTURE), categories=["behavior", "planning"])
    train, heldout = task.load("train"), task.load("heldout")
    assert train and heldout and not {s["frame"] for s in train} & {s["frame"] for s in heldout}
    assert len({s["frame"] for s in heldout}) == math.ceil(0.125 * 9)
    sample = DrivingModality().decode(train[0])
    names = [part["text"].rstrip(": ") for part in task.prompt(sample)[0]["content"] if part.get("text", "").startswith("CAM_")]
    assert names == list(NUSCENES_CAMERAS)
    assert task.target(sample) == f"<answer>{sample['answer']}</answer>"
    assert REWARDS.get(task.accuracy_reward)([task.target(sample)], [sample]) == [1.0]
    with pytest.raises(ValueError, match="path"):
        TASKS.get("drivelm")()
