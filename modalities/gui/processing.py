"""GUI coordinates: explicit, pure conversions between the conventions grounding models answer in.

Four coordinate systems, named by strings everywhere (configs, decoded samples, rewards):

| name | unit | who answers in it |
|---|---|---|
| `pixels` | pixels of the original screenshot | ScreenSpot / ScreenSpot-Pro labels |
| `model_pixels` | pixels of the resized image the model sees | Qwen2.5-VL (and GuirlVG's click points) |
| `normalized` | 0–1 of width / height | SeeClick, the ScreenSpot scorers |
| `thousandths` | 0–1000 of width / height | Qwen-VL / Qwen2-VL boxes |

Every conversion goes through `normalized`, so the original and model sizes are the only extra inputs.
Boxes are `(x1, y1, x2, y2)` with x1 ≤ x2, y1 ≤ y2; the geometry on them (containment, distance, centre,
`xywh_to_xyxy` for the SeeClick/ScreenSpot-v2 form) is `mmpost.rewards.geometry`, shared with the scorers.
"""
from __future__ import annotations

from typing import Sequence

from mmpost.rewards.geometry import Box, Point

Size = tuple[int, int]  # (width, height), PIL order

COORDINATE_SYSTEMS: tuple[str, ...] = ("pixels", "model_pixels", "normalized", "thousandths")


def check_system(system: str) -> str:
    if system not in COORDINATE_SYSTEMS:
        raise ValueError(f"unknown coordinate system {system!r}; expected one of {list(COORDINATE_SYSTEMS)}")
    return system


def _scale(system: str, original_size: Size, model_size: Size) -> tuple[float, float]:
    """Units per full width/height in `system`: (W, H), (W_model, H_model), (1, 1) or (1000, 1000)."""
    check_system(system)
    if system == "pixels":
        return float(original_size[0]), float(original_size[1])
    if system == "model_pixels":
        return float(model_size[0]), float(model_size[1])
    if system == "normalized":
        return 1.0, 1.0
    return 1000.0, 1000.0


def convert_point(point: Sequence[float], source: str, target: str, *, original_size: Size, model_size: Size) -> Point:
    """`point` (x, y) from coordinate system `source` to `target`: x_t = x_s / X_s · X_t (same for y).

    Example: (56, 28) in model_pixels of a 112x56 model image of a 1120x560 screenshot is (0.5, 0.5)
    normalized, (500, 500) thousandths and (560, 280) pixels.
    """
    sx, sy = _scale(source, original_size, model_size)
    tx, ty = _scale(target, original_size, model_size)
    return float(point[0]) / sx * tx, float(point[1]) / sy * ty


def convert_box(box: Sequence[float], source: str, target: str, *, original_size: Size, model_size: Size) -> Box:
    """`box` (x1, y1, x2, y2) from `source` to `target`, corner by corner (see `convert_point`)."""
    x1, y1 = convert_point(box[:2], source, target, original_size=original_size, model_size=model_size)
    x2, y2 = convert_point(box[2:], source, target, original_size=original_size, model_size=model_size)
    return x1, y1, x2, y2


def system_extent(system: str, *, original_size: Size, model_size: Size) -> tuple[float, float]:
    """(max x, max y) of the image in `system`: the valid range of an answer is [0, max]."""
    return _scale(system, original_size, model_size)


def box_outside_image(box: Sequence[float], size: Size) -> list[str]:
    """Which constraints a pixel box (x1, y1, x2, y2) breaks for an image of `size`; [] when it fits."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = size
    problems = []
    if x1 > x2 or y1 > y2:
        problems.append(f"corners out of order (x1={x1:g} > x2={x2:g} or y1={y1:g} > y2={y2:g})")
    if x1 < 0 or y1 < 0:
        problems.append(f"starts before the image origin ({x1:g}, {y1:g})")
    if x2 > width or y2 > height:
        problems.append(f"ends at ({x2:g}, {y2:g}), beyond the {width}x{height} image")
    return problems


def clip_box(box: Sequence[float], size: Size) -> Box:
    """The pixel box clipped to [0, W] x [0, H] (corners reordered first)."""
    x1, x2 = sorted((float(box[0]), float(box[2])))
    y1, y2 = sorted((float(box[1]), float(box[3])))
    width, height = size
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def format_point(point: Sequence[float], system: str) -> str:
    """'(x, y)': integers for pixel and thousandth systems, three decimals for `normalized`."""
    check_system(system)
    if system == "normalized":
        return f"({point[0]:.3f}, {point[1]:.3f})"
    return f"({int(round(point[0]))}, {int(round(point[1]))})"


def resolution_sentence(model_size: Size) -> str:
    """GuirlVG's image-resolution prompting (the component is the paper's; this wording is ours)."""
    return f" The image resolution is {model_size[0]}x{model_size[1]} pixels."
