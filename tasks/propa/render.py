"""Digits drawn as seven-segment glyphs, one per 28-pixel column, each digit value in its own colour.

One merged Qwen-VL visual token covers 28 x 28 pixels, so a digit spans one token column; the colour per
value lets a ~200k-parameter vision tower tell digits apart after a short warm start (the segments carry the
same information for a real model).
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw

CELL = 28  # pixels per digit column
SEGMENTS: dict[int, str] = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc",
                            7: "abc", 8: "abcdefg", 9: "abcdfg"}
DIGIT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40), (40, 160, 60), (40, 80, 220), (235, 170, 30), (150, 60, 200),
    (30, 180, 190), (240, 110, 170), (120, 80, 40), (20, 20, 20), (130, 200, 40),
)
BACKGROUND = (245, 245, 245)
MAX_DIGITS = 4


def _segment_boxes(x: int, y: int, width: int, height: int, thickness: int) -> dict[str, tuple[int, int, int, int]]:
    half = height // 2
    return {
        "a": (x, y, x + width, y + thickness),
        "b": (x + width - thickness, y, x + width, y + half),
        "c": (x + width - thickness, y + half, x + width, y + height),
        "d": (x, y + height - thickness, x + width, y + height),
        "e": (x, y + half, x + thickness, y + height),
        "f": (x, y, x + thickness, y + half),
        "g": (x, y + half - thickness // 2, x + width, y + half + thickness - thickness // 2),
    }


def render_digits(digits: Sequence[int], *, image_size: int = 112) -> Image.Image:
    """An `image_size` square image with `digits` (1-4 values 0-9) left to right, one per 28-px column."""
    if not 1 <= len(digits) <= MAX_DIGITS or any(not 0 <= d <= 9 for d in digits):
        raise ValueError(f"render_digits: need 1-{MAX_DIGITS} digits in 0..9, got {list(digits)}")
    if image_size < CELL * MAX_DIGITS:
        raise ValueError(f"render_digits: image_size must be at least {CELL * MAX_DIGITS}, got {image_size}")
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    top = (image_size - 2 * CELL) // 2
    for column, digit in enumerate(digits):
        boxes = _segment_boxes(column * CELL + 5, top + 4, CELL - 10, 2 * CELL - 8, 4)
        for segment in SEGMENTS[digit]:
            x1, y1, x2, y2 = boxes[segment]
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=DIGIT_COLOURS[digit])
    return image
