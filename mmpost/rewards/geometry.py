"""Boxes and points: the geometry that rewards, the GUI modality and the grounding scorers share.

A box is (x1, y1, x2, y2), a point (x, y), in whatever coordinate system the caller uses (pixels, 0-1, 0-1000):
these functions never convert. Corners are taken as given; `ordered_box` reorders swapped ones where a rule asks.
"""
from __future__ import annotations

from typing import Sequence

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def ordered_box(box: Sequence[float]) -> Box:
    """(min x, min y, max x, max y): a box written with swapped corners, reordered."""
    x1, y1, x2, y2 = box
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union, |A ∩ B| / (|A| + |B| - |A ∩ B|) (the RefCOCO / lmms-eval `compute_iou` rule);
    0 for an empty union."""
    ax1, ay1, ax2, ay2 = first
    bx1, by1, bx2, by2 = second
    intersection = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - intersection
    return intersection / union if union > 0 else 0.0


def point_in_box(point: Sequence[float], box: Sequence[float]) -> bool:
    """x1 <= x <= x2 and y1 <= y <= y2: edges count as inside (the ScreenSpot rule)."""
    return float(box[0]) <= float(point[0]) <= float(box[2]) and float(box[1]) <= float(point[1]) <= float(box[3])


def distance_to_box(point: Sequence[float], box: Sequence[float]) -> float:
    """Euclidean distance from `point` to the nearest point of `box` (0 inside or on the edge)."""
    dx = max(float(box[0]) - float(point[0]), 0.0, float(point[0]) - float(box[2]))
    dy = max(float(box[1]) - float(point[1]), 0.0, float(point[1]) - float(box[3]))
    return (dx * dx + dy * dy) ** 0.5


def box_centre(box: Sequence[float]) -> Point:
    return (float(box[0]) + float(box[2])) / 2.0, (float(box[1]) + float(box[3])) / 2.0


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """(x, y, w, h) -> (x, y, x + w, y + h): the COCO / SeeClick / ScreenSpot v1-v2 box to corners."""
    x, y, w, h = (float(v) for v in box)
    return x, y, x + w, y + h
