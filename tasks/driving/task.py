"""Driving tasks: synthetic `driving_waypoints` (top-down scene -> six waypoints) and `drivelm` (DriveLM QA).

Both use the driving modality. `driving_waypoints` is the CPU test bed of the OpenREAD-style recipe; its
reward is OpenREAD's trajectory reward. `drivelm` reads DriveLM-nuScenes QA files (e.g. the shipped
`challenge/data/train_sample.json` sample with its 54 camera images) for open-ended answers.
"""
from __future__ import annotations

import hashlib
import math
import random
from typing import Sequence

from mmpost.modalities.driving.adapter import camera_content
from mmpost.modalities.driving.drivelm import QA_CATEGORIES, read_drivelm
from mmpost.modalities.driving.processing import format_ego_state, format_waypoints
from mmpost.registry import TASKS
from mmpost.tasks.common import canonical_split
from mmpost.tasks.driving.render import DrivingScene, future_waypoints, random_scene, render_scene
from mmpost.types import Message, Sample

WAYPOINT_INSTRUCTION = (" Plan the ego car's next six waypoints (x, y) in metres, one every 0.5 s over 3 s"
                        " (x right, y forward). Answer with <answer>(x1, y1), ..., (x6, y6)</answer>.")
QA_INSTRUCTION = " Answer with <answer>...</answer>."
BEV_CAMERA = "BEV"
HELDOUT_FRACTION_DENOMINATOR = 8


def scene_split(scene: DrivingScene) -> str:
    digest = hashlib.sha256(scene.key().encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


@TASKS.register("driving_waypoints")
class DrivingWaypointsTask:
    """A top-down rendered road (constant curvature) and the ego speed -> the next six waypoints over 3 s."""

    name = "driving_waypoints"
    modality = "driving"
    accuracy_reward = "driving_trajectory"

    def __init__(self, *, seed: int = 0, image_size: int = 112, ego_state: bool = True,
                 train_size: int = 512, heldout_size: int = 64) -> None:
        self.seed, self.image_size, self.ego_state = seed, image_size, ego_state
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [{"name": "driving_trajectory", "weight": 1.0},
                                {"name": "answer_tag_format", "weight": 0.2}]

    def load(self, split: str, *, size: int | None = None, seed: int | None = None) -> list[Sample]:
        split = canonical_split(self.name, split)
        size = self.sizes[split] if size is None else size
        seed = self.seed if seed is None else seed
        samples = []
        for index in range(size):
            rng = random.Random(f"mmpost.driving_waypoints:{seed}:{split}:{index}")
            while True:
                scene = random_scene(rng, image_size=self.image_size)
                if scene_split(scene) == split:
                    break
            waypoints = future_waypoints(scene)
            samples.append({
                "id": f"driving_waypoints-{split}-{seed}-{index:05d}",
                "cameras": {BEV_CAMERA: render_scene(scene)},
                "camera_order": [BEV_CAMERA],
                "ego_state": {"speed": scene.speed} if self.ego_state else None,
                "problem": "This is a top-down view of the road; the red car is the ego car, heading up.",
                "waypoints": [list(p) for p in waypoints],
                "answer": format_waypoints(waypoints),
                "curvature": scene.curvature,
            })
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        ego = format_ego_state(sample.get("ego_state"))
        text = sample["problem"] + (f" {ego}" if ego else "") + WAYPOINT_INSTRUCTION
        return [{"role": "user", "content": camera_content(sample.get("camera_order") or [BEV_CAMERA], text)}]

    def target(self, sample: Sample) -> str:
        return f"<answer>{sample['answer']}</answer>"


@TASKS.register("drivelm")
class DriveLMTask:
    """DriveLM-nuScenes QA over the six cameras; held-out = a fixed share of key frames (by hash of the token).

    Options: `path` (the DriveLM JSON), `images_root` (folder holding `samples/CAM_*`; default the JSON's
    folder), `categories` (perception / prediction / planning / behavior), `heldout_fraction` of key frames.
    """

    name = "drivelm"
    modality = "driving"
    accuracy_reward = "exact_match"  # DriveLM's tag-0 accuracy: exact string equality (normalised here)

    def __init__(self, *, path: str | None = None, images_root: str | None = None,
                 categories: Sequence[str] = QA_CATEGORIES, heldout_fraction: float = 0.125) -> None:
        if not path:
            raise ValueError("drivelm task needs `path` (data.task_args.path): a DriveLM-nuScenes QA JSON file")
        if not 0.0 <= heldout_fraction < 1.0:
            raise ValueError(f"drivelm: heldout_fraction must be in [0, 1), got {heldout_fraction}")
        self.path, self.images_root, self.categories = path, images_root, tuple(categories)
        self.heldout_fraction = heldout_fraction
        self.default_rewards = [{"name": "exact_match", "weight": 1.0}, {"name": "answer_tag_format", "weight": 0.2}]
        self._samples: list[Sample] | None = None

    def heldout_frames(self, frames: Sequence[str]) -> set[str]:
        """The first ceil(fraction·n) frames in sha256 order: a fixed, disjoint split whatever the file order."""
        ordered = sorted(set(frames), key=lambda token: hashlib.sha256(token.encode()).hexdigest())
        return set(ordered[: math.ceil(self.heldout_fraction * len(ordered))])

    def load(self, split: str, *, size: int | None = None) -> list[Sample]:
        split = canonical_split(self.name, split)
        if self._samples is None:
            self._samples = read_drivelm(self.path, images_root=self.images_root, categories=self.categories)
        heldout = self.heldout_frames([s["frame"] for s in self._samples])
        rows = [s for s in self._samples if (s["frame"] in heldout) == (split == "heldout")]
        return rows if size is None else rows[:size]

    def prompt(self, sample: Sample) -> list[Message]:
        ego = format_ego_state(sample.get("ego_state"))
        text = sample["problem"] + (f" {ego}" if ego else "") + QA_INSTRUCTION
        names = sample.get("camera_order") or list(sample["cameras"])
        decoded = sample.get("decoded") or {}
        return [{"role": "user", "content": camera_content(decoded.get("camera_names", names), text)}]

    def target(self, sample: Sample) -> str:
        return f"<answer>{sample['answer']}</answer>"
