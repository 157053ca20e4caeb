"""Per-token supervised losses on demonstration tokens: (logprobs, mask) [N, T] -> token_loss [N, T].

`logprobs` holds log p_θ(y_t | y_<t, x) of the TARGET tokens. Values where mask = 0 are arbitrary;
the registered aggregation applies the mask. Each function has `needs_full_distribution`: True only
for losses that also need full-vocabulary log-softmax tensors [N, T, V] (so the trainer knows to
compute them, which costs memory).
"""
from __future__ import annotations

from typing import Callable

import torch

from mmpost.registry import SFT_LOSSES

_WHERE = __name__
_KL_DIRECTIONS = ("forward", "reverse")


def _check(logprobs: torch.Tensor, mask: torch.Tensor) -> None:
    if logprobs.dim() != 2 or mask.shape != logprobs.shape:
        raise ValueError(
            f"{_WHERE}: logprobs and mask must both be [N, T], got {tuple(logprobs.shape)} and {tuple(mask.shape)}"
        )


def _marks(needs_full_distribution: bool) -> Callable[[Callable], Callable]:
    def decorator(fn: Callable) -> Callable:
        fn.needs_full_distribution = needs_full_distribution  # type: ignore[attr-defined]
        return fn

    return decorator


@SFT_LOSSES.register("cross_entropy")
@_marks(False)
def cross_entropy(logprobs: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    """Negative log-likelihood of the target token: -log p. [N, T] -> [N, T]."""
    _check(logprobs, mask)
    return -logprobs


@SFT_LOSSES.register("dft")
@_marks(False)
def dft(logprobs: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    """Dynamic Fine-Tuning (Wu et al. 2025, arXiv 2508.05629, eq. 9): -sg(p)·log p, p = exp(log p).

    The gradient is -p·∇log p = -∇p: SFT's implicit 1/p importance weight is cancelled. Same as
    CHORD's `sft_is`. Paper-faithful DFT (the official repo's HEAD defaults to SA-DFT with per-token
    exponents on p). [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    return -torch.exp(logprobs).detach() * logprobs


@SFT_LOSSES.register("chord_phi")
@_marks(False)
def chord_phi(logprobs: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    """CHORD-φ (Zhang et al. 2025, arXiv 2508.11408): -sg(φ(p))·log p with φ(p) = p(1 - p).

    Down-weights both near-certain and near-impossible expert tokens. Follows Trinity-RFT
    `chord_policy_loss.py` (without its optional `cutoff_prob`). [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    p = torch.exp(logprobs).detach()
    return -(p * (1.0 - p)) * logprobs


def _token_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_v p (log p - log q) over the last dim, with 0·log 0 = 0. [..., V] -> [...]."""
    p = torch.exp(log_p)
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(-1)


@SFT_LOSSES.register("asft")
@_marks(True)
def asft(
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    log_dist: torch.Tensor | None = None,
    ref_log_dist: torch.Tensor | None = None,
    kl_weight: float = 0.1,
    kl_direction: str = "forward",
    **_: object,
) -> torch.Tensor:
    """Anchored SFT (Zhu et al. 2025, arXiv 2509.23753): DFT + kl_weight · per-token KL to the initial model.

    log_dist, ref_log_dist: [N, T, V] log-softmax of the current model and of the frozen initial model
    at the target positions. "forward" = KL(p_ref ‖ p_cur), what the official code computes
    (`F.kl_div(log p_cur, p_ref)`, repo zhuchichi56/ASFT, also the Unsloth port); "reverse" =
    KL(p_cur ‖ p_ref), what the paper text states. [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    if log_dist is None or ref_log_dist is None:
        missing = [n for n, v in (("log_dist", log_dist), ("ref_log_dist", ref_log_dist)) if v is None]
        raise ValueError(
            f"{_WHERE}: asft needs full-vocabulary log-softmax tensors {missing} of shape [N, T, V]; "
            "the trainer computes them when `asft.needs_full_distribution` is True"
        )
    if log_dist.shape != ref_log_dist.shape or log_dist.shape[:2] != logprobs.shape:
        raise ValueError(
            f"{_WHERE}: asft log_dist {tuple(log_dist.shape)} and ref_log_dist {tuple(ref_log_dist.shape)} "
            f"must both be [N, T, V] with N, T = {tuple(logprobs.shape)}"
        )
    if kl_direction not in _KL_DIRECTIONS:
        raise ValueError(f"{_WHERE}: asft kl_direction must be one of {_KL_DIRECTIONS}, got {kl_direction!r}")
    ref_log_dist = ref_log_dist.detach()
    if kl_direction == "forward":
        kl = _token_kl(ref_log_dist, log_dist)
    else:
        kl = _token_kl(log_dist, ref_log_dist)
    return dft(logprobs, mask) + kl_weight * kl
