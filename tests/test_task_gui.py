"""The synthetic gui_click task: determinism, disjoint splits, targets inside their boxes, accuracy."""
import random

import pytest

from mmpost.modalities.gui import GuiModality
from mmpost.registry import REWARDS, TASKS
from mmpost.tasks.gui_click import random_screen, render_screen


def test_registered_and_deterministic():
    task = TASKS.get("gui_click")()
    assert task.modality == "gui" and task.accuracy_reward == "gui_point_in_box"
    first, again = task.load("train", size=6), task.load("train", size=3)
    assert [s["box"] for s in first[:3]] == [s["box"] for s in again]
    assert first[0]["images"][0].tobytes() == again[0]["images"][0].tobytes()


def test_train_and_heldout_screens_are_disjoint():
    task = TASKS.get("gui_click")()
    def key(sample):
        return tuple((e["kind"], e["label"], tuple(e["box"])) for e in sample["elements"])
    train = {key(s) for s in task.load("train", size=200)}
    heldout = {key(s) for s in task.load("test", size=40)}
    assert not train & heldout


def test_screens_have_distinct_labels_inside_the_image():
    rng = random.Random(3)
    for _ in range(50):
        screen = random_screen(rng, num_elements=rng.randint(1, 6))
        labels = [e.label for e in screen.elements]
        assert len(labels) == len(set(labels))
        for element in screen.elements:
            x1, y1, x2, y2 = element.box
            assert 0 <= x1 < x2 <= screen.width and 0 <= y1 < y2 <= screen.height
    image = render_screen(screen)
    x1, y1, x2, y2 = screen.elements[0].box
    assert image.getpixel((x2 - 2, y2 - 2)) != (236, 236, 240)  # the element is drawn where its box says


def test_target_is_the_box_centre_and_scores_one():
    task = TASKS.get("gui_click")()
    modality = GuiModality(min_pixels=56 * 56, max_pixels=112 * 112)
    samples = [modality.decode(s) for s in task.load("train", size=8)]
    targets = [task.target(s) for s in samples]
    accuracy = REWARDS.get(task.accuracy_reward)
    assert accuracy(targets, samples) == [1.0] * 8
    assert REWARDS.get("gui_click_format")(targets, samples) == [1.0] * 8
    assert accuracy(["<answer>(0, 0)</answer>"] * 8, samples) == [0.0] * 8  # the title bar is never a target
    assert samples[0]["problem"].startswith("Click the ") and samples[0]["target_label"] in samples[0]["problem"]
    text = task.prompt(samples[0])[0]["content"][1]["text"]
    assert "<answer>(x, y)</answer>" in text


def test_bad_options():
    with pytest.raises(ValueError, match="split"):
        TASKS.get("gui_click")().load("validation")
    with pytest.raises(ValueError, match="max_elements"):
        TASKS.get("gui_click")(max_elements=9)
