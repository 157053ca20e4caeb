"""The synthetic video_motion task: which way does a square move? (task "video_motion", modality "video").

Each clip is a coloured square sliding left, right, up or down over a grey background, drawn from a
per-sample seed stream and written as a real H.264 mp4 with PyAV into a cache folder, so training
decodes it through the video modality's decord/PyAV path. Train and held-out clips come from disjoint
parts of clip space (by a hash of the clip's parameters).
"""
from __future__ import annotations

import hashlib
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mmpost.modalities.video.tiny import write_video
from mmpost.registry import TASKS
from mmpost.tasks.common import canonical_split
from mmpost.types import Message, Sample

DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # (dx, dy) per unit of speed
COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30)}
QUESTION = "Which direction does the square move?"
INSTRUCTION = " Answer with <answer>...</answer>."
DEFAULT_SIZES = {"train": 128, "heldout": 32}
HELDOUT_FRACTION_DENOMINATOR = 8


@dataclass(frozen=True)
class Motion:
    """A square of `side` pixels starting at (x, y), moving `speed` pixels per frame in `direction`."""

    size: int  # frame side in pixels
    frames: int
    fps: int
    background: int  # grey level
    colour: str
    side: int
    x: int
    y: int
    speed: int
    direction: str

    def key(self) -> str:
        return "|".join(str(v) for v in (self.size, self.frames, self.fps, self.background, self.colour, self.side,
                                          self.x, self.y, self.speed, self.direction))

    def position(self, t: int) -> tuple[int, int]:
        dx, dy = STEP[self.direction]
        return self.x + dx * self.speed * t, self.y + dy * self.speed * t


def random_motion(rng: random.Random, *, size: int = 112, frames: int = 8, fps: int = 8) -> Motion:
    """A motion whose square stays fully inside the frame on every frame; uses only `rng`."""
    direction = rng.choice(DIRECTIONS)
    side = rng.randint(size // 8, size // 5)
    speed = rng.randint(3, max(3, (size - side - 4) // max(frames - 1, 1)))
    travel = speed * (frames - 1)
    dx, dy = STEP[direction]
    # Along the motion the start leaves room for the travel; across it, anywhere inside.
    def start(delta: int) -> int:
        if delta > 0:
            return rng.randint(2, size - side - 2 - travel)
        if delta < 0:
            return rng.randint(2 + travel, size - side - 2)
        return rng.randint(2, size - side - 2)
    x, y = start(dx), start(dy)
    return Motion(size, frames, fps, rng.randint(200, 245), rng.choice(sorted(COLOURS)), side, x, y, speed, direction)


def render(motion: Motion) -> np.ndarray:
    """The clip's frames, uint8 [frames, size, size, 3]."""
    clip = np.full((motion.frames, motion.size, motion.size, 3), motion.background, dtype=np.uint8)
    for t in range(motion.frames):
        x, y = motion.position(t)
        clip[t, y : y + motion.side, x : x + motion.side] = COLOURS[motion.colour]
    return clip


def motion_split(motion: Motion) -> str:
    digest = hashlib.sha256(motion.key().encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


def write_clip(motion: Motion, cache_dir: Path) -> Path:
    """The clip as `<cache_dir>/<digest>.mp4` (reused when present; written to a temporary name, then renamed)."""
    path = cache_dir / f"{hashlib.sha256(motion.key().encode()).hexdigest()[:20]}.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix=".mp4")
    os.close(handle)
    try:
        write_video(render(motion), temporary, fps=motion.fps)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def default_cache_dir() -> Path:
    base = os.environ.get("MMPOST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmpost")
    return Path(base) / "video_motion"


@TASKS.register("video_motion")
class VideoMotionTask:
    """"Which direction does the square move?" -> left | right | up | down, over a short mp4 clip."""

    name = "video_motion"
    modality = "video"
    accuracy_reward = "exact_match"

    def __init__(self, *, seed: int = 0, size: int = 112, frames: int = 8, fps: int = 8,
                 train_size: int = DEFAULT_SIZES["train"], heldout_size: int = DEFAULT_SIZES["heldout"],
                 cache_dir: str | os.PathLike | None = None) -> None:
        if size % 2 or size < 32:
            raise ValueError(f"video_motion: size must be even and at least 32, got {size}")
        if frames < 2:
            raise ValueError(f"video_motion: frames must be at least 2, got {frames}")
        self.seed, self.size, self.frames, self.fps = seed, size, frames, fps
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.default_rewards = [{"name": "exact_match", "weight": 1.0}, {"name": "answer_tag_format", "weight": 0.5}]

    def load(self, split: str, *, size: int | None = None, seed: int | None = None) -> list[Sample]:
        """`size` clips of `split` ("train", or "heldout" / "test"); sample i uses the stream (seed, split, i)."""
        split = canonical_split("video_motion", split)
        count = self.sizes[split] if size is None else size
        seed = self.seed if seed is None else seed
        samples = []
        for index in range(count):
            rng = random.Random(f"mmpost.video_motion:{seed}:{split}:{index}")
            while True:
                motion = random_motion(rng, size=self.size, frames=self.frames, fps=self.fps)
                if motion_split(motion) == split:
                    break
            samples.append({
                "id": f"video_motion-{split}-{seed}-{index:05d}",
                "videos": [str(write_clip(motion, self.cache_dir).resolve())],
                "problem": QUESTION,
                "answer": motion.direction,
                "choices": list(DIRECTIONS),
                "motion": {"colour": motion.colour, "side": motion.side, "start": [motion.x, motion.y],
                           "speed": motion.speed, "frames": motion.frames, "fps": motion.fps},
            })
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": sample["problem"] + INSTRUCTION}]}]

    def target(self, sample: Sample) -> str:
        return f"<answer>{sample['answer']}</answer>"


def centroid_direction(frames: Sequence[np.ndarray], background: Sequence[int] | None = None) -> str:
    """The direction the non-background blob's centroid moves between the first and last frame (for checks).

    frames: [T, H, W, 3] uint8; the background is the corner pixel of the first frame unless given.
    """
    first, last = np.asarray(frames[0]).astype(int), np.asarray(frames[-1]).astype(int)
    colour = np.asarray(background if background is not None else first[0, 0])

    def centre(frame: np.ndarray) -> np.ndarray:
        mask = np.abs(frame - colour).sum(-1) > 60  # codec noise stays far below 60 levels
        ys, xs = np.nonzero(mask)
        return np.array([xs.mean(), ys.mean()])

    dx, dy = centre(last) - centre(first)
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"
