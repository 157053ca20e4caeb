"""Synthetic screenshots: a window with labelled buttons and text fields, drawn with PIL from a `random.Random`.

Boxes are `(x1, y1, x2, y2)` pixel edges of the rendered image (the element covers columns x1..x2-1). Each
label has a fixed colour (`LABEL_COLOURS`), so a tiny model can tie the word in the instruction to what it
sees even though it can barely read the 10-pixel text; the text is still drawn, as in a real screenshot.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BUTTON_LABELS: tuple[str, ...] = ("OK", "Cancel", "Save", "Open", "Close", "Next", "Back", "Send", "Help", "Delete")
FIELD_LABELS: tuple[str, ...] = ("Search", "Name", "Email", "Password")
# Distinct, saturated fills: one per label (buttons) and pale tints for fields.
_PALETTE = [(40, 90, 220), (200, 50, 50), (40, 160, 70), (230, 150, 20), (130, 60, 190), (20, 160, 170),
            (120, 120, 120), (220, 80, 160), (90, 60, 30), (160, 170, 30)]
LABEL_COLOURS: dict[str, tuple[int, int, int]] = dict(zip(BUTTON_LABELS, _PALETTE))
FIELD_COLOURS: dict[str, tuple[int, int, int]] = {
    "Search": (255, 255, 210), "Name": (210, 255, 220), "Email": (215, 230, 255), "Password": (255, 220, 230)}
KINDS = ("button", "field")
WINDOW_COLOUR = (236, 236, 240)
TITLE_BAR_COLOUR = (60, 64, 72)
TITLE_BAR_FRACTION = 0.1


@dataclass(frozen=True)
class Element:
    kind: str  # "button" | "field"
    label: str
    box: tuple[int, int, int, int]  # (x1, y1, x2, y2) pixel edges

    @property
    def name(self) -> str:
        return f"{self.label} {self.kind}"


@dataclass(frozen=True)
class Screen:
    width: int
    height: int
    elements: tuple[Element, ...]

    def key(self) -> str:
        """Everything that decides the pixels; equal keys mean equal screenshots."""
        return f"{self.width}x{self.height}|" + "|".join(f"{e.kind}:{e.label}:{','.join(map(str, e.box))}" for e in self.elements)


def _cells(width: int, height: int, columns: int, rows: int) -> list[tuple[int, int, int, int]]:
    top = int(height * TITLE_BAR_FRACTION) + 2
    cell_w, cell_h = width // columns, (height - top) // rows
    return [(c * cell_w, top + r * cell_h, (c + 1) * cell_w, top + (r + 1) * cell_h) for r in range(rows) for c in range(columns)]


def random_screen(rng: random.Random, *, width: int = 112, height: int = 112, num_elements: int = 3,
                  field_probability: float = 0.25) -> Screen:
    """A window of `num_elements` (1-6) elements with distinct labels, one per cell of a 2 x 3 grid, jittered."""
    if not 1 <= num_elements <= 6:
        raise ValueError(f"num_elements must be 1..6, got {num_elements}")
    if width < 64 or height < 64:
        raise ValueError(f"screens must be at least 64x64 pixels, got {width}x{height}")
    cells = rng.sample(_cells(width, height, 2, 3), num_elements)
    buttons = rng.sample(BUTTON_LABELS, num_elements)
    fields = rng.sample(FIELD_LABELS, min(num_elements, len(FIELD_LABELS)))
    elements = []
    for index, (cx1, cy1, cx2, cy2) in enumerate(cells):
        is_field = index < len(fields) and rng.random() < field_probability
        kind, label = ("field", fields[index]) if is_field else ("button", buttons[index])
        cell_w, cell_h = cx2 - cx1, cy2 - cy1
        w = rng.randint(int(cell_w * 0.6), cell_w - 4)
        h = rng.randint(max(8, int(cell_h * 0.5)), max(9, cell_h - 4))
        x1 = cx1 + rng.randint(2, max(2, cell_w - w - 2))
        y1 = cy1 + rng.randint(2, max(2, cell_h - h - 2))
        elements.append(Element(kind, label, (x1, y1, x1 + w, y1 + h)))
    return Screen(width, height, tuple(elements))


def render_screen(screen: Screen) -> Image.Image:
    """The screenshot as an RGB image: window, title bar, then each element with its label."""
    image = Image.new("RGB", (screen.width, screen.height), WINDOW_COLOUR)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, screen.width - 1, int(screen.height * TITLE_BAR_FRACTION)), fill=TITLE_BAR_COLOUR)
    font = ImageFont.load_default(size=9)
    for element in screen.elements:
        x1, y1, x2, y2 = element.box
        if element.kind == "button":
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=LABEL_COLOURS[element.label])
            text_colour = (255, 255, 255)
        else:
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=FIELD_COLOURS[element.label], outline=(90, 90, 90))
            text_colour = (90, 90, 90)
        draw.text((x1 + 2, y1 + 1), element.label, fill=text_colour, font=font)
    return image
