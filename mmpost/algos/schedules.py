"""Coefficient schedules: a training step (int >= 0) -> a float. Pure functions, no state."""
from __future__ import annotations

import math

from mmpost.registry import SCHEDULES

_WHERE = __name__


def _check_step(step: int | float, name: str) -> None:
    if step < 0:
        raise ValueError(f"{_WHERE}: {name} step must be >= 0, got {step}")


def _check_length(value: int | float, field: str, name: str) -> None:
    if value < 0:
        raise ValueError(f"{_WHERE}: {name} {field} must be >= 0, got {value}")


@SCHEDULES.register("constant")
def constant(step: int, *, value: float = 1.0) -> float:
    """The same value at every step."""
    _check_step(step, "constant")
    return float(value)


@SCHEDULES.register("chord_mu")
def chord_mu(
    step: int, *, warmup: int = 200, decay: int = 400, peak: float = 0.5, valley: float = 0.02
) -> float:
    """CHORD's global SFT weight μ(t) (Zhang et al. 2025, arXiv 2508.11408; Trinity-RFT `mix_chord`).

    step < warmup:                    μ = step / warmup · peak   (linear warm-up from 0)
    warmup <= step < warmup + decay:  μ = (peak - valley) · ½(1 + cos(π (step - warmup) / decay)) + valley
    step >= warmup + decay:           μ = valley
    warmup = 0 starts at peak; decay = 0 drops to valley right after the warm-up. The defaults are
    the mix_chord example's (200 / 400 / 0.5 / 0.02).
    """
    _check_step(step, "chord_mu")
    _check_length(warmup, "warmup", "chord_mu")
    _check_length(decay, "decay", "chord_mu")
    if step < warmup:
        return step / warmup * peak
    if step >= warmup + decay:
        return float(valley)
    progress = (step - warmup) / decay
    return (peak - valley) * 0.5 * (1.0 + math.cos(math.pi * progress)) + valley


def _progress(step: int, steps: int, name: str) -> float:
    _check_step(step, name)
    _check_length(steps, "steps", name)
    return 1.0 if steps == 0 else min(step / steps, 1.0)


@SCHEDULES.register("linear")
def linear(step: int, *, start: float, end: float, steps: int) -> float:
    """Straight line from `start` at step 0 to `end` at `steps`, then `end`. steps = 0 gives `end`."""
    return start + (end - start) * _progress(step, steps, "linear")


@SCHEDULES.register("cosine")
def cosine(step: int, *, start: float, end: float, steps: int) -> float:
    """Half cosine from `start` at step 0 to `end` at `steps`, then `end` (flat at both ends).

    value = end + (start - end) · ½(1 + cos(π · step / steps)). steps = 0 gives `end`.
    """
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * _progress(step, steps, "cosine")))
