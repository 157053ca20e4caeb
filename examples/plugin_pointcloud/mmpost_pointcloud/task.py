"""The "pointcloud_axis" task: along which axis (x, y or z) is a synthetic Gaussian point cloud elongated?

Clouds are written as real `.npy` files into a cache folder (the modality reads files, as with real data).
The elongated axis has a standard deviation `ratio` times the other two (default 3), so the answer is
unambiguous from the renders. Registered through the `mmpost.task` entry point as an object.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from .rewards import AXES

QUESTION = "Along which axis is the point cloud elongated: x, y or z? Answer with <answer>...</answer>."
SPLIT_ALIASES = {"train": "train", "heldout": "heldout", "test": "heldout"}


def make_cloud(rng: random.Random, axis: int, *, points: int = 128, ratio: float = 3.0) -> np.ndarray:
    """[points, 3] float32: zero-mean Gaussian, std `ratio` along `axis` and 1 along the others, from `rng` only."""
    generator = np.random.default_rng(rng.getrandbits(63))
    scales = np.ones(3)
    scales[axis] = ratio
    return (generator.standard_normal((points, 3)) * scales).astype(np.float32)


def default_cache_dir() -> Path:
    base = os.environ.get("MMPOST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmpost")
    return Path(base) / "pointcloud_axis"


class PointCloudAxisTask:
    """Options: `seed`, `train_size`, `heldout_size`, `points` per cloud, elongation `ratio`, `cache_dir`."""

    name = "pointcloud_axis"
    modality = "pointcloud"
    accuracy_reward = "pointcloud_axis_accuracy"

    def __init__(self, *, seed: int = 0, train_size: int = 256, heldout_size: int = 48, points: int = 128,
                 ratio: float = 3.0, cache_dir: str | None = None) -> None:
        if ratio <= 1.0:
            raise ValueError(f"pointcloud_axis: ratio must exceed 1 (the long axis must be longer), got {ratio}")
        self.seed, self.points, self.ratio = seed, points, ratio
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.default_rewards = [{"name": "pointcloud_axis_accuracy", "weight": 1.0},
                                {"name": "answer_tag_format", "weight": 0.5}]

    def load(self, split: str, *, size: int | None = None) -> list[dict]:
        """Rows {id, pointclouds: [absolute .npy path], problem, answer}; row i is fixed by (seed, split, i)."""
        if split not in SPLIT_ALIASES:
            raise ValueError(f"pointcloud_axis: unknown split {split!r}; expected one of {sorted(SPLIT_ALIASES)}")
        key = SPLIT_ALIASES[split]
        size = self.sizes[key] if size is None else size
        folder = self.cache_dir / f"seed{self.seed}-{key}-n{self.points}-r{self.ratio:g}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for index in range(size):
            rng = random.Random(f"mmpost_pointcloud:{self.seed}:{key}:{index}")
            axis = rng.randrange(3)
            path = folder / f"{index:05d}.npy"
            if not path.is_file():
                partial = path.with_suffix(f".{os.getpid()}.part.npy")
                np.save(partial, make_cloud(rng, axis, points=self.points, ratio=self.ratio))
                os.replace(partial, path)  # never a half-written file for a concurrent reader
            rows.append({"id": f"pointcloud_axis-{key}-{self.seed}-{index:05d}", "pointclouds": [str(path.resolve())],
                         "problem": QUESTION, "answer": AXES[axis]})
        return rows

    def prompt(self, sample: dict) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample["problem"]}]}]

    def target(self, sample: dict) -> str:
        return f"<answer>{sample['answer']}</answer>"
