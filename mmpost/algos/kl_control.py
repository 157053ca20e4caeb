"""KL-coefficient controllers: how β evolves during a run.

A controller is a small stateful object: `coef` is the β of the next update, `update(metrics)` sees the
step's metrics (reward/..., loss/kl) after it, and `state_dict()` is plain JSON so resume is exact.
"""
from __future__ import annotations

from typing import Any

from mmpost.registry import KL_CONTROLLERS


@KL_CONTROLLERS.register("fixed")
class FixedKL:
    """β stays at its initial value (verl/TRL default)."""

    def __init__(self, initial_coef: float) -> None:
        self.coef = float(initial_coef)

    def update(self, metrics: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef = float(state["coef"])


@KL_CONTROLLERS.register("adaptive")
class AdaptiveKL(FixedKL):
    """Ziegler et al. 2019 (verl `AdaptiveKLController`): β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon),
    with n the number of sequences in the step."""

    def __init__(self, initial_coef: float, target_kl: float = 0.01, horizon: int = 10000) -> None:
        super().__init__(initial_coef)
        if target_kl <= 0 or horizon <= 0:
            raise ValueError("adaptive KL needs target_kl > 0 and horizon > 0")
        self.target_kl, self.horizon = target_kl, horizon

    def update(self, metrics: dict[str, Any]) -> None:
        kl = metrics.get("loss/kl")
        if kl is None:
            return
        error = min(max(kl / self.target_kl - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + error * metrics.get("rollout/sequences", 1.0) / self.horizon
