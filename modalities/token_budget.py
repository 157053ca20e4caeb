"""Fit a prompt's images and video frames into a token budget instead of failing.

Qwen-VL prompts cost text tokens plus, per image, (w/28)·(h/28) tokens and, per video,
ceil(T/2)·(w/28)·(h/28) tokens (one token per 28x28 merged patch; two frames per temporal patch). When
that exceeds `max_prompt_tokens`, first every item's pixel budget shrinks by one common factor (the largest
that fits, found by bisection, each item resized by `smart_resize` and never above its own size), down to
its `min_pixels`; if that is not enough, videos drop frames by one common fraction (evenly spread,
an even count, at least 2) at the smallest size. If even that does not fit, a `MediaError` says so.
Used by the image and the video modality alike (so it lives beside them, not inside either).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from qwen_vl_utils.vision_process import FRAME_FACTOR, smart_resize

from mmpost.types import MediaError

log = logging.getLogger(__name__)

BISECTION_STEPS = 30


@dataclass(frozen=True)
class MediaItem:
    """One image (nframes = 1) or video of a prompt, at its original size, with its pixel budget."""

    kind: str  # "image" | "video"
    index: int  # position among the prompt's items of this kind
    width: int
    height: int
    nframes: int
    min_pixels: int
    max_pixels: int

    @property
    def label(self) -> str:
        return f"{self.kind} {self.index}"


@dataclass(frozen=True)
class MediaPlan:
    """What the model will see of an item: a (width, height) and, for a video, how many frames."""

    width: int
    height: int
    nframes: int


def plan_tokens(item: MediaItem, plan: MediaPlan, factor: int) -> int:
    """LLM tokens of an item under a plan: merged patches per frame x temporal patches (1 for an image)."""
    per_frame = (plan.width // factor) * (plan.height // factor)
    return per_frame if item.kind == "image" else per_frame * math.ceil(plan.nframes / FRAME_FACTOR)


def _sized(item: MediaItem, max_pixels: int, factor: int) -> tuple[int, int]:
    height, width = smart_resize(item.height, item.width, factor, min_pixels=item.min_pixels,
                                 max_pixels=max(max_pixels, 1))
    # qwen-vl-utils' floor branch can round a thin side down to 0; the processor needs at least one patch.
    return max(width, factor), max(height, factor)


def initial_plan(item: MediaItem, factor: int) -> MediaPlan:
    """The size the item gets within its own pixel budget, with all its frames."""
    width, height = _sized(item, item.max_pixels, factor)
    return MediaPlan(width, height, item.nframes)


def _shrunk(items: Sequence[MediaItem], plans: Sequence[MediaPlan], scale: float, factor: int) -> list[MediaPlan]:
    out = []
    for item, plan in zip(items, plans):
        area = plan.width * plan.height
        width, height = _sized(item, max(item.min_pixels, int(scale * area)), factor)
        # Never larger than the unshrunk plan (smart_resize rounds up small images to min_pixels).
        if width * height > area:
            width, height = plan.width, plan.height
        out.append(replace(plan, width=width, height=height))
    return out


def _fewer_frames(items: Sequence[MediaItem], plans: Sequence[MediaPlan], fraction: float) -> list[MediaPlan]:
    out = []
    for item, plan in zip(items, plans):
        if item.kind == "video":
            keep = max(FRAME_FACTOR, int(fraction * plan.nframes) // FRAME_FACTOR * FRAME_FACTOR)
            plan = replace(plan, nframes=min(keep, plan.nframes))
        out.append(plan)
    return out


def _largest_fitting(make, fits) -> float | None:
    """Largest x in [0, 1] with fits(make(x)) by bisection; None when even x = 0 does not fit."""
    if fits(make(1.0)):
        return 1.0
    if not fits(make(0.0)):
        return None
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(make(middle)) else (low, middle)
    return low


def fit_media_to_budget(
    items: Sequence[MediaItem], *, text_tokens: int, max_prompt_tokens: int | None, factor: int, name: str = "prompt",
) -> tuple[list[MediaPlan], list[dict[str, Any]]]:
    """Plans (one per item, in order) whose total with `text_tokens` is at most `max_prompt_tokens`, and the
    actions taken ([] when everything fitted as it was). Raises `MediaError` naming `name` when nothing fits.
    """
    plans = [initial_plan(item, factor) for item in items]

    def total(candidate: Sequence[MediaPlan]) -> int:
        return text_tokens + sum(plan_tokens(i, p, factor) for i, p in zip(items, candidate))

    before = total(plans)
    if max_prompt_tokens is None or before <= max_prompt_tokens:
        return plans, []

    def fits(candidate: Sequence[MediaPlan]) -> bool:
        return total(candidate) <= max_prompt_tokens

    scale = _largest_fitting(lambda s: _shrunk(items, plans, s, factor), fits)
    if scale is not None:
        fitted = _shrunk(items, plans, scale, factor)
    else:
        smallest = _shrunk(items, plans, 0.0, factor)
        fraction = _largest_fitting(lambda f: _fewer_frames(items, smallest, f), fits)
        if fraction is None:
            floor = total(_fewer_frames(items, smallest, 0.0))
            raise MediaError(
                f"{name}: cannot fit max_prompt_tokens={max_prompt_tokens}: the text takes {text_tokens} tokens and "
                f"the media at their smallest ({FRAME_FACTOR} frames per video, min_pixels) still {floor - text_tokens}"
            )
        fitted = _fewer_frames(items, smallest, fraction)
    actions: list[dict[str, Any]] = []
    for item, old, new in zip(items, plans, fitted):
        if (old.width, old.height) != (new.width, new.height):
            actions.append({"media": item.label, "action": "shrink", "from": [old.width, old.height],
                            "to": [new.width, new.height]})
        if old.nframes != new.nframes:
            actions.append({"media": item.label, "action": "drop_frames", "from": old.nframes, "to": new.nframes})
    actions.append({"action": "fit", "tokens_before": before, "tokens_after": total(fitted),
                    "max_prompt_tokens": max_prompt_tokens})
    log.warning("%s: media took %d prompt tokens, over max_prompt_tokens=%d; %s", name, before, max_prompt_tokens,
                "; ".join(describe_action(a) for a in actions))
    return fitted, actions


def describe_action(action: dict[str, Any]) -> str:
    if action["action"] == "shrink":
        return f"{action['media']} resized {action['from'][0]}x{action['from'][1]} -> {action['to'][0]}x{action['to'][1]}"
    if action["action"] == "drop_frames":
        return f"{action['media']} kept {action['to']} of {action['from']} frames"
    return f"{action['tokens_before']} -> {action['tokens_after']} tokens"


def text_token_count(processor: Any, text: str, placeholder_tokens: Sequence[str]) -> int:
    """Tokens of the templated text, not counting the media placeholders the processor will expand."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    placeholder_ids = {tokenizer.convert_tokens_to_ids(t) for t in placeholder_tokens}
    return sum(1 for i in ids if i not in placeholder_ids)


def processor_size_for(plans: Sequence[MediaPlan], default: tuple[int, int]) -> dict[str, int]:
    """A processor `size` budget that leaves every planned (already resized) item as it is.

    The Qwen-VL processors re-run `smart_resize` with their budget; an item whose sides are multiples
    of 28 and whose area lies inside the budget is unchanged, so the budget is widened to cover all plans.
    """
    areas = [p.width * p.height for p in plans]
    return {"shortest_edge": min([default[0]] + areas), "longest_edge": max([default[1]] + areas)}
