"""A tiny on-disk GUI fixture in the ScreenSpot v2 row layout (pixel `bbox` as x, y, w, h), for reader tests.

The GUI modality runs on the tiny Qwen2.5-VL (`tiny-qwen2.5-vl`); what it needs beyond that is screenshots
with element boxes, which this writes: flat-coloured "buttons" on a pale window, one JSONL row per button.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image, ImageDraw


def write_tiny_screenshot_rows(out_dir: str | os.PathLike, *, width: int = 112, height: int = 112) -> Path:
    """Write `screen.png` and `rows.jsonl` (3 rows: `id`, `images`, `instruction`, `bbox` [x, y, w, h] pixels,
    `data_type`) under `out_dir`; return the JSONL path. Load rows with `box_format: xywh` on the GUI modality."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (width, height), (236, 236, 240))
    draw = ImageDraw.Draw(image)
    buttons = [("OK", (8, 8, 40, 16), (40, 120, 220)), ("Cancel", (56, 8, 48, 16), (200, 60, 60)),
               ("Save", (8, height - 28, 44, 18), (40, 160, 80))]
    rows = []
    for index, (label, (x, y, w, h), colour) in enumerate(buttons):
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=colour)
        draw.text((x + 3, y + 3), label, fill=(255, 255, 255))
        rows.append({"id": f"tiny-gui-{index}", "images": ["screen.png"], "instruction": f"Click the {label} button.",
                     "bbox": [x, y, w, h], "data_type": "text"})
    image.save(out / "screen.png")
    path = out / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
