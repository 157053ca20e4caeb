"""Images of a few large digits on a pale background, fully determined by a `random.Random`.

Each number sits in its own vertical band of the image (left to right), at a random height and a small
random horizontal jitter, in a dark ink, so the numbers never overlap and are read left to right.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

INKS: tuple[tuple[int, int, int], ...] = ((20, 20, 20), (30, 30, 140), (140, 20, 20), (20, 100, 40))
BACKGROUND_LEVELS = (225, 250)
FONT_FRACTION = 0.6  # font size as a fraction of the image side: digits about 48 px tall at 112 px


@dataclass(frozen=True)
class DigitScene:
    image_size: int
    background: int  # grey level
    numbers: tuple[int, ...]
    positions: tuple[tuple[int, int], ...]  # top-left corner of each number's text
    inks: tuple[int, ...]  # index into INKS per number

    def key(self) -> str:
        """A canonical text of everything that decides the pixels; equal keys mean equal images."""
        parts = [str(self.image_size), str(self.background)]
        parts += [f"{n}@{x},{y}:{i}" for n, (x, y), i in zip(self.numbers, self.positions, self.inks)]
        return "|".join(parts)


@lru_cache(maxsize=8)
def _font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=pixels)


def random_digit_scene(rng: random.Random, *, image_size: int = 112, count: int = 2, low: int = 1, high: int = 3) -> DigitScene:
    """`count` numbers drawn uniformly from [low, high] (single digits), one per vertical band."""
    if not 1 <= count <= 4:
        raise ValueError(f"count must be 1..4 numbers, got {count}")
    if not 0 <= low <= high <= 9:
        raise ValueError(f"numbers must be single digits with low <= high, got {low}..{high}")
    font_px = round(FONT_FRACTION * image_size)
    glyph_width = font_px * 0.6  # the default font's digits are about 0.55 em wide
    band = image_size / count
    numbers, positions, inks = [], [], []
    for index in range(count):
        numbers.append(rng.randint(low, high))
        slack = max(0, int(band - glyph_width) - 2)
        x = int(index * band) + rng.randint(0, slack)
        y = rng.randint(0, max(0, image_size - font_px - 8))
        positions.append((x, y))
        inks.append(rng.randrange(len(INKS)))
    return DigitScene(image_size, rng.randint(*BACKGROUND_LEVELS), tuple(numbers), tuple(positions), tuple(inks))


def render_digits(scene: DigitScene) -> Image.Image:
    """The scene as an RGB image of `image_size` x `image_size` pixels."""
    image = Image.new("RGB", (scene.image_size,) * 2, (scene.background,) * 3)
    draw = ImageDraw.Draw(image)
    font = _font(round(FONT_FRACTION * scene.image_size))
    for number, position, ink in zip(scene.numbers, scene.positions, scene.inks):
        draw.text(position, str(number), fill=INKS[ink], font=font)
    return image
