"""Scenes of flat coloured shapes, drawn with PIL, fully determined by a `random.Random`.

Box convention (used by the grounding questions and the `box` field): `(x1, y1, x2, y2)` in pixel-edge
coordinates of the rendered image, so a shape covers columns x1..x2-1 and rows y1..y2-1 and its width
is x2 - x1 (the COCO `x + w` convention). Drawing is not anti-aliased: every pixel is either the
background or exactly one shape colour, which keeps answers checkable from pixels.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
}
SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle")
# Backgrounds are pale greys, far from every shape colour.
BACKGROUND_LEVELS = (225, 250)
# Shape sides as fractions of the image side: 18..29 px at 112 px, about two 14-px patches.
SIDE_FRACTION = (0.16, 0.26)
EDGE_PADDING = 2  # pixels kept free at the image border
GAP = 3  # pixels kept free between two shapes, so they never touch and count as separate blobs


@dataclass(frozen=True)
class Shape:
    kind: str  # one of SHAPE_KINDS
    colour: str  # one of COLOURS
    box: tuple[int, int, int, int]  # (x1, y1, x2, y2), pixel edges

    @property
    def centre(self) -> tuple[int, int]:
        """A pixel inside the shape for every kind (for a triangle, mid-height on its axis)."""
        x1, y1, x2, y2 = self.box
        return (x1 + x2) // 2, (y1 + y2) // 2

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass(frozen=True)
class Scene:
    image_size: int
    background: tuple[int, int, int]
    shapes: tuple[Shape, ...]

    def key(self) -> str:
        """A canonical text of everything that decides the pixels; equal keys mean equal images."""
        parts = [f"{self.image_size}", ",".join(map(str, self.background))]
        parts += [f"{s.kind}:{s.colour}:{','.join(map(str, s.box))}" for s in self.shapes]
        return "|".join(parts)


def side_of(shape: Shape, image_size: int) -> str:
    """'left' or 'right': scenes never let a shape cross the vertical midline, so this is unambiguous."""
    return "left" if shape.box[2] <= image_size // 2 else "right"


def level_of(shape: Shape, image_size: int) -> str:
    """'top' or 'bottom', for scenes drawn with `both_midlines` (no shape crosses the horizontal midline either)."""
    if shape.box[1] < image_size // 2 < shape.box[3]:
        raise ValueError(f"{shape.name} crosses the horizontal midline: draw the scene with both_midlines=True")
    return "top" if shape.box[3] <= image_size // 2 else "bottom"


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _place(rng: random.Random, image_size: int, side: int, placed: list[tuple[int, int, int, int]],
           both_midlines: bool = False):
    """A box of `side` pixels wholly in the left or right half (and, with `both_midlines`, wholly in the top or
    bottom half), apart from `placed`; None after 200 tries."""
    half = image_size // 2
    for _ in range(200):
        if rng.random() < 0.5:
            x1 = rng.randint(EDGE_PADDING, half - side)
        else:
            x1 = rng.randint(half, image_size - EDGE_PADDING - side)
        if not both_midlines:
            y1 = rng.randint(EDGE_PADDING, image_size - EDGE_PADDING - side)
        elif rng.random() < 0.5:
            y1 = rng.randint(EDGE_PADDING, half - side)
        else:
            y1 = rng.randint(half, image_size - EDGE_PADDING - side)
        box = (x1, y1, x1 + side, y1 + side)
        if not any(_overlaps(box, other, GAP) for other in placed):
            return box
    return None


def random_scene(rng: random.Random, *, image_size: int = 112, num_shapes: int = 1, both_midlines: bool = False) -> Scene:
    """A scene of `num_shapes` (1-4) non-touching shapes with distinct (colour, kind) pairs.

    Distinct pairs make "the {colour} {shape}" name exactly one shape; no shape crosses the vertical
    midline, so "left or right" always has an answer (nor, with `both_midlines`, the horizontal one, for "top or
    bottom"). Uses only `rng`, never global random state.
    """
    if not 1 <= num_shapes <= 4:
        raise ValueError(f"num_shapes must be 1..4, got {num_shapes}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    min_side = max(6, round(SIDE_FRACTION[0] * image_size))
    max_side = max(min_side, round(SIDE_FRACTION[1] * image_size))
    while True:
        level = rng.randint(*BACKGROUND_LEVELS)
        identities = rng.sample([(k, c) for k in SHAPE_KINDS for c in COLOURS], num_shapes)
        boxes: list[tuple[int, int, int, int]] = []
        for _ in identities:
            box = _place(rng, image_size, rng.randint(min_side, max_side), boxes, both_midlines)
            if box is None:
                break  # crowded: start the scene again from the same stream
            boxes.append(box)
        else:
            shapes = tuple(Shape(kind, colour, box) for (kind, colour), box in zip(identities, boxes))
            return Scene(image_size=image_size, background=(level, level, level), shapes=shapes)


def render(scene: Scene) -> Image.Image:
    """The scene as an RGB image of `image_size` x `image_size` pixels."""
    image = Image.new("RGB", (scene.image_size, scene.image_size), scene.background)
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        x1, y1, x2, y2 = shape.box
        colour = COLOURS[shape.colour]
        # PIL's coordinates are inclusive, the box's right/bottom edges exclusive.
        if shape.kind == "square":
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour)
        elif shape.kind == "circle":
            draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=colour)
        elif shape.kind == "triangle":
            draw.polygon([(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2 - 1) // 2, y1)], fill=colour)
        else:
            raise ValueError(f"unknown shape kind {shape.kind!r}; expected one of {SHAPE_KINDS}")
    return image
