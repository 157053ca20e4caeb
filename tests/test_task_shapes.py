"""The synthetic shapes task (answers checked against pixels) and the generic vqa task."""
from __future__ import annotations

import hashlib
import json
from collections import deque

import numpy as np
import pytest

from mmpost.registry import REWARDS, TASKS
from mmpost.rewards.parsing import parse_box
from mmpost.tasks.shapes import COLOURS, ShapesTask
from mmpost.tasks.vqa import VQATask
from mmpost.types import DataError, Task

ALL_KINDS = ["color", "count", "position", "grounding"]


@pytest.fixture(scope="module")
def task() -> ShapesTask:
    return TASKS.get("shapes")(kinds=ALL_KINDS)


@pytest.fixture(scope="module")
def train(task):
    return task.load("train", size=160)


def pixels(sample) -> np.ndarray:
    return np.asarray(sample["images"][0].convert("RGB"))


def image_digest(sample) -> str:
    return hashlib.sha256(sample["images"][0].tobytes()).hexdigest()


def background_of(image: np.ndarray) -> np.ndarray:
    return image[0, 0]  # shapes keep off the border


def components(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """4-connected blobs of True pixels, as lists of (row, column)."""
    seen = np.zeros_like(mask, dtype=bool)
    blobs = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue, blob = deque([start]), []
        while queue:
            r, c = queue.popleft()
            blob.append((r, c))
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= nr < mask.shape[0] and 0 <= nc < mask.shape[1] and mask[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    queue.append((nr, nc))
        blobs.append(blob)
    return blobs


def blob_at(image: np.ndarray, row: int, column: int) -> list[tuple[int, int]]:
    mask = (image != background_of(image)).any(-1)
    return next(b for b in components(mask) if (row, column) in set(b))


def tight_box(blob) -> tuple[int, int, int, int]:
    rows, columns = zip(*blob)
    return min(columns), min(rows), max(columns) + 1, max(rows) + 1


def kind_from_fill(blob) -> str:
    """A square fills its box, a circle about pi/4 of it, an upward triangle about half."""
    x1, y1, x2, y2 = tight_box(blob)
    fill = len(blob) / ((x2 - x1) * (y2 - y1))
    return "square" if fill > 0.97 else "circle" if 0.7 < fill < 0.86 else "triangle" if 0.4 < fill < 0.62 else "?"


def named_shape(sample):
    """The metadata entry of the shape the question names ("the red circle")."""
    return next(s for s in sample["shapes"] if f"the {s['color']} {s['shape']}" in sample["problem"])


# ---- determinism and splits --------------------------------------------------------------------
def test_same_seed_gives_pixel_equal_samples(task):
    first, again = task.load("train", size=24), task.load("train", size=24)
    for a, b in zip(first, again):
        assert np.array_equal(pixels(a), pixels(b))
        assert (a["id"], a["problem"], a["answer"], a["kind"]) == (b["id"], b["problem"], b["answer"], b["kind"])
    other_seed = task.load("train", size=24, seed=1)
    assert sum(image_digest(a) != image_digest(b) for a, b in zip(first, other_seed)) >= 20


def test_a_sample_does_not_depend_on_the_split_size(task):
    small, large = task.load("train", size=5), task.load("train", size=40)
    assert [image_digest(s) for s in small] == [image_digest(s) for s in large[:5]]


def test_train_and_heldout_never_share_a_scene():
    shapes = ShapesTask(kinds=ALL_KINDS)
    train = shapes.load("train")
    heldout = shapes.load("heldout")
    assert (len(train), len(heldout)) == (512, 64)
    # a different seed for one split still cannot collide: the splits partition scene space
    heldout_other_seed = shapes.load("test", seed=7, size=64)
    train_images = {image_digest(s) for s in train}
    assert not train_images & {image_digest(s) for s in heldout + heldout_other_seed}


def test_test_is_an_alias_of_heldout(task):
    assert [image_digest(s) for s in task.load("test", size=8)] == [image_digest(s) for s in task.load("heldout", size=8)]
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        task.load("validation")


def test_kinds_rotate_and_are_checked(task):
    assert [s["kind"] for s in task.load("train", size=6)] == ALL_KINDS + ALL_KINDS[:2]
    assert {s["kind"] for s in ShapesTask().load("train", size=30)} == {"color", "count", "position"}
    with pytest.raises(ValueError, match="kinds must be"):
        ShapesTask(kinds=["colour"])


# ---- answers agree with the pixels -------------------------------------------------------------
def test_every_answer_matches_the_rendered_image(train):
    for sample in train:
        image = pixels(sample)
        assert image.shape == (112, 112, 3)
        foreground = (image != background_of(image)).any(-1)
        blobs = components(foreground)
        assert len(blobs) == len(sample["shapes"]), sample["id"]
        kind = sample["kind"]
        if kind == "count":
            assert int(sample["answer"]) == len(blobs)
        elif kind == "color":
            colours = {tuple(int(v) for v in image[r, c]) for r, c in blobs[0]}
            assert colours == {COLOURS[sample["answer"]]}
        else:
            named = named_shape(sample)
            x1, y1, x2, y2 = named["box"]
            row, column = (y1 + y2) // 2, (x1 + x2) // 2
            assert tuple(int(v) for v in image[row, column]) == COLOURS[named["color"]]
            blob = blob_at(image, row, column)
            assert kind_from_fill(blob) == named["shape"], sample["id"]
            if kind == "position":
                columns = [c for _, c in blob]
                side = "left" if max(columns) < 56 else "right" if min(columns) >= 56 else "both"
                assert sample["answer"] == side
            else:
                assert tight_box(blob) == tuple(sample["box"]) == parse_box(sample["answer"])


def test_questions_name_exactly_one_shape(train):
    for sample in train:
        if sample["kind"] in ("position", "grounding"):
            names = [f"{s['color']} {s['shape']}" for s in sample["shapes"]]
            assert len(names) == len(set(names))


def test_answer_vocabulary_is_small(train):
    answers = {s["answer"] for s in train if s["kind"] != "grounding"}
    assert answers <= {"red", "green", "blue", "yellow", "1", "2", "3", "4", "left", "right"}
    for sample in train:
        if "choices" in sample:
            assert sample["answer"] in sample["choices"]


# ---- prompt, target, rewards -------------------------------------------------------------------
def test_prompt_and_target_forms(task, train):
    sample = train[0]
    assert task.prompt(sample) == [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": sample["problem"] + " Answer with <answer>...</answer>."}],
        }
    ]
    assert task.target(sample) == f"<answer>{sample['answer']}</answer>"
    assert isinstance(task, Task)
    assert task.accuracy_reward == "shapes_accuracy"
    assert task.default_rewards == [
        {"name": "shapes_accuracy", "weight": 1.0},
        {"name": "answer_tag_format", "weight": 0.5},
    ]


def test_every_target_scores_full_reward(task, train):
    targets = [task.target(s) for s in train]
    assert REWARDS.get("shapes_accuracy")(targets, train) == [1.0] * len(train)
    assert REWARDS.get("answer_tag_format")(targets, train) == [1.0] * len(train)


def test_shapes_accuracy_dispatches_on_kind():
    accuracy = REWARDS.get("shapes_accuracy")
    colour = {"kind": "color", "answer": "red", "choices": list(COLOURS)}
    grounding = {"kind": "grounding", "answer": "[10, 10, 30, 30]", "box": [10, 10, 30, 30]}
    completions = [
        "<answer>Red</answer>",  # colour, right
        "<answer>[10, 10, 30, 30]</answer>",  # colour question answered with a box
        "<answer>[10,10,30,30]</answer>",  # grounding, exact box written differently: IoU 1
        "<answer>[10, 10, 30, 20]</answer>",  # IoU 200 / 400 = 0.5: counts
        "<answer>[10, 10, 30, 19]</answer>",  # IoU 180 / 400 = 0.45: does not
        "<answer>red</answer>",  # grounding answered with a word
    ]
    samples = [colour, colour, grounding, grounding, grounding, grounding]
    assert accuracy(completions, samples) == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]


# ---- the generic vqa task ----------------------------------------------------------------------
def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_vqa_loads_rows_with_their_root_and_builds_prompts(tmp_path):
    rows = [
        {"id": "a", "images": ["img/a.png"], "problem": "What is it?", "answer": "cat"},
        {"id": "b", "images": ["x.png", "y.png"], "problem": "Same?", "answer": ["no", "No"]},
    ]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    task = TASKS.get("vqa")(path=str(data), heldout_path=str(data), answer_template="Answer: {answer}")
    loaded = task.load("train")
    assert [r["id"] for r in loaded] == ["a", "b"]
    assert loaded[0]["_root"] == str(tmp_path)
    assert len(task.load("test", size=1)) == 1
    assert task.prompt(loaded[1]) == [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same? Answer with <answer>...</answer>."}],
        }
    ]
    assert task.target(loaded[0]) == "Answer: cat"
    assert task.target(loaded[1]) == "Answer: no"
    assert isinstance(task, Task) and task.accuracy_reward == "exact_match"


def test_vqa_reports_bad_rows_and_missing_options(tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "problem": "q", "answer": "x"}, {"id": "b", "problem": "q"}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2.*answer"):
        VQATask(path=data).load("train")
    assert [r["id"] for r in VQATask(path=data).load("train", skip_bad_rows=True)] == ["a"]
    with pytest.raises(ValueError, match="heldout_path"):
        VQATask(path=data).load("heldout")
    with pytest.raises(ValueError, match="answer_template"):
        VQATask(path=data, answer_template="<answer></answer>")
