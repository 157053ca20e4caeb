"""GUI grounding rewards (GuirlVG's reward components): in-box, soft distance, and click format.

All three read the gold box in the model's answer convention from `sample["decoded"]["gui"]` (written by the
GUI modality), so the comparison happens in the coordinates the model was asked to answer in.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

from mmpost.registry import REWARDS
from mmpost.rewards.builtin import answer_text
from mmpost.rewards.geometry import box_centre, distance_to_box, point_in_box
from mmpost.rewards.parsing import parse_point
from mmpost.types import DataError, Sample

from .processing import convert_box, convert_point, system_extent

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_CLICK_ANSWER = re.compile(rf"<answer>\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*</answer>")


def gui_info(sample: Sample) -> dict:
    """`sample["decoded"]["gui"]`, or a DataError naming the sample when the GUI modality did not decode it."""
    info = (sample.get("decoded") or {}).get("gui")
    if info is None:
        raise DataError(f"sample {sample.get('id', '?')!r}: GUI rewards need a sample decoded by the 'gui' modality "
                        "(decoded['gui'] is missing)")
    return info


def predicted_point(completion: str) -> tuple[float, float] | None:
    """The first (x, y) of the answer (last `<answer>` tag's content, else the whole output)."""
    return parse_point(answer_text(completion))


@REWARDS.register("gui_point_in_box")
def gui_point_in_box(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """GuirlVG's In-Bbox reward (= the ScreenSpot metric): 1.0 if the predicted point lies in the gold box,
    edges included; 0.0 otherwise or when no point parses."""
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        point = predicted_point(completion)
        scores.append(1.0 if point is not None and point_in_box(point, gui_info(sample)["box"]) else 0.0)
    return scores


def soft_click_value(distance: float, *, kind: str, scale: float) -> float:
    """A reward in [0, 1] falling with the normalised distance d: `linear` max(0, 1 − d/scale) or
    `gaussian` exp(−d² / (2·scale²)). The soft-reward idea is GuirlVG's; these forms are ours."""
    if scale <= 0:
        raise ValueError(f"soft click reward: scale must be > 0, got {scale}")
    if kind == "linear":
        return max(0.0, 1.0 - distance / scale)
    if kind == "gaussian":
        return math.exp(-distance * distance / (2.0 * scale * scale))
    raise ValueError(f"soft click reward: kind must be 'linear' or 'gaussian', got {kind!r}")


@REWARDS.register("gui_point_distance")
def gui_point_distance(completions: Sequence[str], samples: Sequence[Sample], *, target: str = "centre",
                       kind: str = "gaussian", scale: float = 0.1) -> list[float]:
    """GuirlVG's Soft Reward (our form): distance d from the point to the box `centre` (or to the `box`,
    0 inside) in normalised image units, mapped by `soft_click_value`; 0.0 when no point parses."""
    if target not in ("centre", "box"):
        raise ValueError(f"gui_point_distance: target must be 'centre' or 'box', got {target!r}")
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        point = predicted_point(completion)
        if point is None:
            scores.append(0.0)
            continue
        info = gui_info(sample)
        sizes = dict(original_size=tuple(info["image_size"]), model_size=tuple(info["model_size"]))
        point_n = convert_point(point, info["coordinates"], "normalized", **sizes)
        box_n = convert_box(info["box"], info["coordinates"], "normalized", **sizes)
        if target == "centre":
            centre = box_centre(box_n)
            distance = math.hypot(point_n[0] - centre[0], point_n[1] - centre[1])
        else:
            distance = distance_to_box(point_n, box_n)
        scores.append(soft_click_value(distance, kind=kind, scale=scale))
    return scores


@REWARDS.register("gui_click_format")
def gui_click_format(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """1.0 if the whole output is `<answer>(x, y)</answer>` with the point inside the image's range in the
    answer convention ([0, W] x [0, H], [0, 1]² or [0, 1000]²); else 0.0."""
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        match = _CLICK_ANSWER.fullmatch(completion.strip())
        if match is None:
            scores.append(0.0)
            continue
        info = gui_info(sample)
        max_x, max_y = system_extent(info["coordinates"], original_size=tuple(info["image_size"]),
                                     model_size=tuple(info["model_size"]))
        x, y = float(match.group(1)), float(match.group(2))
        scores.append(1.0 if 0.0 <= x <= max_x and 0.0 <= y <= max_y else 0.0)
    return scores
