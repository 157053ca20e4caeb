"""KL-coefficient controllers: how β evolves during a run.

A controller is a small stateful object: `coef` is the β of the next update, `update(metrics)` reads the
step's metrics after it and returns its own (a dict, added to the step's line; it never writes into the
metrics it reads), and `state_dict()` is plain JSON so resume is exact.

The KL a controller reads is the one the step actually penalised: `loss/kl` when the KL term is in the
loss, `reward/kl` when `algorithm.kl_in_reward` folds β·KL into the reward (the trainer logs it as verl's
`apply_kl_penalty` measures it: the per-sequence token mean of the KL, averaged over sequences).
"""
from __future__ import annotations

from typing import Any

from mmpost.registry import KL_CONTROLLERS


def current_kl(metrics: dict[str, Any]) -> float | None:
    """The step's penalised KL: the loss term's, else the in-reward one's, else None."""
    for key in ("loss/kl", "reward/kl"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


@KL_CONTROLLERS.register("fixed")
class FixedKL:
    """β stays at its initial value (verl/TRL default)."""

    def __init__(self, initial_coef: float) -> None:
        self.coef = float(initial_coef)

    def update(self, metrics: dict[str, Any]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef = float(state["coef"])


@KL_CONTROLLERS.register("adaptive")
class AdaptiveKL(FixedKL):
    """Ziegler et al. 2019 (verl `AdaptiveKLController`): β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon),
    with n the number of sequences in the step (`rollout/sequences`). KL is `loss/kl` or, with
    `algorithm.kl_in_reward` (verl's use of this controller), `reward/kl`; a step with neither leaves β."""

    def __init__(self, initial_coef: float, target_kl: float = 0.01, horizon: int = 10000) -> None:
        super().__init__(initial_coef)
        if target_kl <= 0 or horizon <= 0:
            raise ValueError("adaptive KL needs target_kl > 0 and horizon > 0")
        self.target_kl, self.horizon = target_kl, horizon

    def update(self, metrics: dict[str, Any]) -> dict[str, float]:
        kl = current_kl(metrics)
        if kl is None:
            return {}
        error = min(max(kl / self.target_kl - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + error * metrics.get("rollout/sequences", 1.0) / self.horizon
        return {}
