"""The synthetic shapes task: templated questions about rendered shapes, the CPU test bed of every recipe.

A tiny (~200k parameter) model learns it from a few hundred examples, so a recipe test can assert that
accuracy rises. Scenes and questions come from per-sample seed streams, and train and held-out scenes
come from disjoint halves of scene space, so the splits never share an image.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence

from mmpost.registry import REWARDS, TASKS
from mmpost.rewards.builtin import box_iou, exact_match
from mmpost.tasks.common import canonical_split, check_kinds
from mmpost.tasks.shapes.render import COLOURS, Scene, random_scene, render, side_of
from mmpost.types import Message, Sample

KINDS: tuple[str, ...] = ("color", "count", "position", "grounding")
DEFAULT_KINDS: tuple[str, ...] = ("color", "count", "position")
DEFAULT_SIZES = {"train": 512, "heldout": 64}
INSTRUCTION = " Answer with <answer>...</answer>."
GROUNDING_IOU_THRESHOLD = 0.5
# One scene in HELDOUT_FRACTION_DENOMINATOR (by hash of its pixels' description) belongs to heldout.
HELDOUT_FRACTION_DENOMINATOR = 8


def scene_split(scene: Scene) -> str:
    """'heldout' or 'train': a fixed partition of all possible scenes, whatever the seed or sizes."""
    digest = hashlib.sha256(scene.key().encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


def _scene_in_split(rng: random.Random, split: str, image_size: int, num_shapes: int) -> Scene:
    """Draw scenes from `rng` until one falls in `split`'s part of scene space."""
    while True:
        scene = random_scene(rng, image_size=image_size, num_shapes=num_shapes)
        if scene_split(scene) == split:
            return scene


def make_sample(kind: str, rng: random.Random, *, split: str, image_size: int, sample_id: str) -> Sample:
    """One question of `kind` about a fresh scene of `split`, drawn only from `rng`."""
    num_shapes = 1 if kind == "color" else rng.randint(1, 4)
    scene = _scene_in_split(rng, split, image_size, num_shapes)
    target = rng.choice(scene.shapes)
    extras: dict[str, Any] = {}
    if kind == "color":
        problem, answer, choices = "What colour is the shape?", target.colour, list(COLOURS)
    elif kind == "count":
        problem, answer, choices = "How many shapes are there?", str(num_shapes), ["1", "2", "3", "4"]
    elif kind == "position":
        problem = f"Is the {target.name} on the left or the right?"
        answer, choices = side_of(target, image_size), ["left", "right"]
    elif kind == "grounding":
        problem, choices = f"Give the bounding box of the {target.name}.", None
        answer = "[{}, {}, {}, {}]".format(*target.box)
        extras["box"] = list(target.box)
    else:
        raise ValueError(f"unknown shapes question kind {kind!r}; expected some of {KINDS}")
    sample: Sample = {
        "id": sample_id,
        "images": [render(scene)],
        "problem": problem,
        "answer": answer,
        "kind": kind,
        "image_size": image_size,
        "shapes": [{"shape": s.kind, "color": s.colour, "box": list(s.box)} for s in scene.shapes],
        **extras,
    }
    if choices is not None:
        sample["choices"] = choices
    return sample


@TASKS.register("shapes")
class ShapesTask:
    """Colour, count, left/right and bounding-box questions about 1-4 shapes in a small image.

    Options given here are the defaults of `load`, which may override them per call.
    """

    name = "shapes"
    modality = "image"
    accuracy_reward = "shapes_accuracy"

    def __init__(
        self,
        *,
        seed: int = 0,
        image_size: int = 112,
        kinds: Sequence[str] | None = None,
        train_size: int = DEFAULT_SIZES["train"],
        heldout_size: int = DEFAULT_SIZES["heldout"],
    ) -> None:
        self.seed = seed
        self.image_size = image_size
        self.kinds = check_kinds("shapes", kinds, KINDS, DEFAULT_KINDS)
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [
            {"name": "shapes_accuracy", "weight": 1.0},
            {"name": "answer_tag_format", "weight": 0.5},
        ]

    def load(
        self,
        split: str,
        *,
        size: int | None = None,
        seed: int | None = None,
        image_size: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[Sample]:
        """`size` samples of `split` ("train", or "heldout" / its alias "test"), kinds in round-robin.

        Sample i draws from its own stream seeded by (seed, split, i), so a sample does not change
        when `size` or `kinds` order elsewhere change, and loading is reproducible across processes.
        """
        split = canonical_split("shapes", split)
        size = self.sizes[split] if size is None else size
        seed = self.seed if seed is None else seed
        image_size = self.image_size if image_size is None else image_size
        kinds = self.kinds if kinds is None else check_kinds("shapes", kinds, KINDS, DEFAULT_KINDS)
        samples = []
        for index in range(size):
            # A string seed is hashed with SHA-512 by `random.Random`, independent of PYTHONHASHSEED.
            rng = random.Random(f"mmpost.shapes:{seed}:{split}:{index}")
            sample_id = f"shapes-{split}-{seed}-{index:05d}"
            kind = kinds[index % len(kinds)]
            samples.append(make_sample(kind, rng, split=split, image_size=image_size, sample_id=sample_id))
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        return [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": sample["problem"] + INSTRUCTION}],
            }
        ]

    def target(self, sample: Sample) -> str:
        return f"<answer>{sample['answer']}</answer>"


@REWARDS.register("shapes_accuracy")
def shapes_accuracy(completions: Sequence[str], samples: Sequence[Sample]) -> list[float | None]:
    """Per-kind correctness: exact match for colour/count/position, box IoU >= 0.5 for grounding."""
    scores: list[float | None] = []
    for completion, sample in zip(completions, samples, strict=True):
        if sample.get("kind") == "grounding":
            scores.extend(box_iou([completion], [sample], threshold=GROUNDING_IOU_THRESHOLD))
        else:
            scores.extend(exact_match([completion], [sample]))
    return scores
