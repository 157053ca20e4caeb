"""The synthetic `gui_click` task: "Click the Save button." on a rendered screenshot -> "(x, y)".

The gold element box travels as `box` (original pixels); the GUI modality converts it to the convention the
model answers in, and the rewards (`gui_point_in_box`, `gui_point_distance`, `gui_click_format`) compare there.
Train and held-out screens come from disjoint halves of screen space (a hash of each screen's description).
"""
from __future__ import annotations

import hashlib
import random
from typing import Any

from mmpost.modalities.gui.processing import format_point
from mmpost.rewards.geometry import box_centre
from mmpost.registry import TASKS
from mmpost.tasks.common import canonical_split
from mmpost.tasks.gui_click.render import Screen, random_screen, render_screen
from mmpost.types import DataError, Message, Sample

DEFAULT_SIZES = {"train": 512, "heldout": 64}
INSTRUCTION = " Answer with the click point as <answer>(x, y)</answer>."
HELDOUT_FRACTION_DENOMINATOR = 8


def screen_split(screen: Screen) -> str:
    """'heldout' for one screen in 8 (by hash of its description), else 'train': a fixed partition."""
    digest = hashlib.sha256(screen.key().encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


def make_sample(rng: random.Random, *, split: str, width: int, height: int, max_elements: int, sample_id: str) -> Sample:
    while True:
        screen = random_screen(rng, width=width, height=height, num_elements=rng.randint(2, max_elements))
        if screen_split(screen) == split:
            break
    target = rng.choice(screen.elements)
    return {
        "id": sample_id,
        "images": [render_screen(screen)],
        "problem": f"Click the {target.name}.",
        "box": list(target.box),
        "target_label": target.label,
        "elements": [{"kind": e.kind, "label": e.label, "box": list(e.box)} for e in screen.elements],
    }


@TASKS.register("gui_click")
class GuiClickTask:
    """Click-point grounding on synthetic screenshots of 2-`max_elements` labelled buttons and fields."""

    name = "gui_click"
    modality = "gui"
    accuracy_reward = "gui_point_in_box"

    def __init__(self, *, seed: int = 0, width: int = 112, height: int = 112, max_elements: int = 4,
                 train_size: int = DEFAULT_SIZES["train"], heldout_size: int = DEFAULT_SIZES["heldout"]) -> None:
        if not 2 <= max_elements <= 6:
            raise ValueError(f"gui_click: max_elements must be 2..6, got {max_elements}")
        self.seed, self.width, self.height, self.max_elements = seed, width, height, max_elements
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [
            {"name": "gui_point_in_box", "weight": 1.0},
            {"name": "gui_click_format", "weight": 0.5},
        ]

    def load(self, split: str, *, size: int | None = None, seed: int | None = None) -> list[Sample]:
        """`size` samples of `split`; sample i is drawn from its own stream seeded by (seed, split, i)."""
        split = canonical_split("gui_click", split)
        size = self.sizes[split] if size is None else size
        seed = self.seed if seed is None else seed
        return [
            make_sample(random.Random(f"mmpost.gui_click:{seed}:{split}:{i}"), split=split, width=self.width,
                        height=self.height, max_elements=self.max_elements, sample_id=f"gui_click-{split}-{seed}-{i:05d}")
            for i in range(size)
        ]

    def prompt(self, sample: Sample) -> list[Message]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample["problem"] + INSTRUCTION}]}]

    def target(self, sample: Sample) -> str:
        """`<answer>(x, y)</answer>`: the box centre in the modality's answer convention (needs a decoded sample)."""
        info: Any = (sample.get("decoded") or {}).get("gui")
        if info is None:
            raise DataError(f"sample {sample.get('id', '?')!r}: gui_click targets need a sample decoded by the gui modality")
        return f"<answer>{format_point(box_centre(info['box']), info['coordinates'])}</answer>"
