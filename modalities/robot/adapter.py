"""The robot modality: image observation(s) + proprioception in, an action chunk (as action tokens) out.

Samples: `images` (one or more frames, image-modality sources), `proprio` [P] numbers, optionally `actions`
[K, D] (the demonstrated chunk) and `action_stats` {"low": [D], "high": [D], "n_bins": n}. Prompt encoding is
the image modality's; proprioception reaches the model as text (`format_proprio`).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from mmpost.modalities.image.adapter import ImageModality, sample_id
from mmpost.registry import MODALITIES
from mmpost.types import DataError, Message, PromptEncoding, Sample


def format_proprio(proprio: Sequence[float], decimals: int = 2, names: Sequence[str] | None = None) -> str:
    """'State: x 0.12, y -0.40.' (names default to s0, s1, ...)."""
    names = list(names) if names is not None else [f"s{i}" for i in range(len(proprio))]
    if len(names) != len(proprio):
        raise ValueError(f"{len(names)} proprio names for {len(proprio)} values")
    return "State: " + ", ".join(f"{n} {float(v):.{decimals}f}" for n, v in zip(names, proprio)) + "."


def _numeric_array(sample: Sample, field: str, ndim: int) -> np.ndarray:
    try:
        array = np.asarray(sample[field], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"sample {sample_id(sample)}: '{field}' must be numbers, got {sample[field]!r:.80}") from None
    if array.ndim != ndim or array.size == 0 or not np.isfinite(array).all():
        shape = "[P]" if ndim == 1 else "[K, D]"
        raise DataError(f"sample {sample_id(sample)}: '{field}' must be a finite {shape} array, got shape {array.shape}")
    return array


@MODALITIES.register("robot")
class RobotModality:
    """Frames + proprioception; `decoded` gains `proprio` [P] and, when present, `actions` [K, D] (float64)."""

    name = "robot"

    def __init__(self, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
        self.images = ImageModality(min_pixels=min_pixels, max_pixels=max_pixels)

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        if sample.get("proprio") is None:
            raise DataError(f"sample {sample_id(sample)}: a robot sample needs 'proprio' (the robot state numbers)")
        decoded_sample = self.images.decode(sample, root)
        decoded = decoded_sample["decoded"]
        if not decoded["images"]:
            raise DataError(f"sample {sample_id(sample)}: a robot sample needs at least one image observation")
        decoded["proprio"] = _numeric_array(sample, "proprio", 1)
        if sample.get("actions") is not None:
            decoded["actions"] = _numeric_array(sample, "actions", 2)
        return decoded_sample

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        if "proprio" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample)["decoded"])
        return self.images.encode_prompt(processor, messages, sample)
