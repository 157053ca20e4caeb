"""GuirlVG's Adversarial KL Factor (Kang et al. 2025, arXiv 2508.04389), as a documented reconstruction.

What the paper states (abstract and figure caption): an "Adversarial KL Factor" that "dynamically stabilizes
training to mitigate reward over-optimization". Its formula is not public. Ours:

    r̄_t  = mean reward of step t's rollouts                      (metrics["reward/mean"])
    g_t  = max(0, r̄_t − b_{t−1}) / (|b_{t−1}| + ε)               relative rise above the running baseline
    β_t  = β_0 · min(1 + k·g_t, max_factor)                       KL weight of the next update
    b_t  = α·b_{t−1} + (1 − α)·r̄_t                                EMA baseline, b_1 = r̄_1 (so g_1 = 0)

Why this shape: a GRPO policy that starts exploiting a reward (over-optimisation) shows a batch reward that
climbs faster than its own recent history. The KL weight then grows in proportion to that sudden rise, pulling
the policy back toward the reference exactly while the rise lasts ("adversarial": the penalty pushes against
the reward's own movement). When reward is flat or falls, g = 0 and β returns to β_0 at once, so ordinary
learning is not slowed. The rise is relative to |b| so the factor means the same for rewards on any scale; ε
keeps it finite near a zero baseline and `max_factor` bounds β.
"""
from __future__ import annotations

import math
from typing import Any

from mmpost.algos.kl_control import FixedKL
from mmpost.registry import KL_CONTROLLERS


def reward_rise(batch_reward: float, baseline: float, eps: float) -> float:
    """g = max(0, r̄ − b) / (|b| + ε): how far the batch reward rose above the baseline, relative to it."""
    return max(0.0, batch_reward - baseline) / (abs(baseline) + eps)


def adversarial_coef(initial_coef: float, rise: float, gain: float, max_factor: float) -> float:
    """β = β_0 · min(1 + k·g, max_factor)."""
    return initial_coef * min(1.0 + gain * rise, max_factor)


def ema(previous: float, value: float, decay: float) -> float:
    """b ← α·b + (1 − α)·value."""
    return decay * previous + (1.0 - decay) * value


@KL_CONTROLLERS.register("adversarial")
class AdversarialKL(FixedKL):
    """β_t = β_0·min(1 + k·max(0, r̄_t − b_{t−1})/(|b_{t−1}| + ε), max_factor), b the EMA of r̄ (decay α).

    Args:
        initial_coef: β_0 (`algorithm.kl_coef`); must be > 0, since a zero β has nothing to scale.
        gain: k, how strongly a reward rise raises β.
        decay: α of the EMA baseline, in [0, 1).
        eps: ε in the relative rise.
        max_factor: upper bound of β / β_0 (≥ 1).
        reward_key: the step metric read as r̄ (default the trainer's mean policy reward).
    """

    def __init__(self, initial_coef: float, gain: float = 1.0, decay: float = 0.9, eps: float = 0.1,
                 max_factor: float = 5.0, reward_key: str = "reward/mean") -> None:
        super().__init__(initial_coef)
        if initial_coef <= 0:
            raise ValueError("adversarial KL needs algorithm.kl_coef > 0 (it scales β_0; β_0 = 0 means no KL term)")
        if gain < 0 or not 0.0 <= decay < 1.0 or eps <= 0 or max_factor < 1.0:
            raise ValueError(f"adversarial KL needs gain >= 0, 0 <= decay < 1, eps > 0 and max_factor >= 1; got "
                             f"gain={gain}, decay={decay}, eps={eps}, max_factor={max_factor}")
        self.initial_coef = float(initial_coef)
        self.gain, self.decay, self.eps, self.max_factor = float(gain), float(decay), float(eps), float(max_factor)
        self.reward_key = reward_key
        self.baseline: float | None = None
        self.rise = 0.0

    def update(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Set β for the next update from this step's mean reward; returns `loss/kl_adv_rise` and `_baseline`."""
        value = metrics.get(self.reward_key)
        if value is None or not math.isfinite(float(value)):
            return {}  # a step without policy rollouts says nothing about over-optimisation
        value = float(value)
        if self.baseline is None:
            self.baseline = value
        self.rise = reward_rise(value, self.baseline, self.eps)
        self.coef = adversarial_coef(self.initial_coef, self.rise, self.gain, self.max_factor)
        self.baseline = ema(self.baseline, value, self.decay)
        return {"loss/kl_adv_rise": self.rise, "loss/kl_adv_baseline": self.baseline}

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "baseline": self.baseline, "rise": self.rise}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef = float(state["coef"])
        self.baseline = None if state.get("baseline") is None else float(state["baseline"])
        self.rise = float(state.get("rise", 0.0))
