"""Per-token policy-gradient losses: (logprobs, old_logprobs, advantages, mask) -> (token_loss, metrics).

Shapes: logprobs, old_logprobs, mask [N, T] (mask float, 1 = a unit that counts); advantages [N]
(broadcast over T) or [N, T]. token_loss [N, T] is the loss to MINIMISE; values where mask = 0 are
arbitrary because the registered aggregation applies the mask. `old_logprobs` is always treated as a
constant (detached). metrics are plain floats: `clip_fraction` (masked fraction of units whose
clipped term was the active one), `ratio_mean` (masked mean importance ratio) and `approx_kl`
(masked mean of old - new log-prob, verl's `ppo_kl`); losses with a dual clip add
`dual_clip_fraction`.
"""
from __future__ import annotations

import torch

from mmpost.registry import POLICY_LOSSES

_WHERE = __name__
Metrics = dict[str, float]


def _prepare(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes; return (old detached, advantages as [N, T] or [N, 1], mask as float)."""
    if logprobs.dim() != 2:
        raise ValueError(f"{_WHERE}: logprobs must be [N, T], got {tuple(logprobs.shape)}")
    for name, tensor in (("old_logprobs", old_logprobs), ("mask", mask)):
        if tensor.shape != logprobs.shape:
            raise ValueError(f"{_WHERE}: {name} must match logprobs {tuple(logprobs.shape)}, got {tuple(tensor.shape)}")
    n = logprobs.shape[0]
    if advantages.dim() == 1 and advantages.shape[0] == n:
        advantages = advantages.unsqueeze(-1)
    elif advantages.shape not in (logprobs.shape, (n, 1)):
        raise ValueError(
            f"{_WHERE}: advantages must be [N], [N, 1] or [N, T] with N, T = {tuple(logprobs.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    return old_logprobs.detach(), advantages.detach().to(logprobs.dtype), mask.to(logprobs.dtype)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    values = torch.broadcast_to(values, mask.shape)
    total = mask.sum()
    if total <= 0:
        return 0.0
    return float((torch.where(mask > 0, values.float(), 0.0) * mask).sum() / total)


def _clip_metrics(
    ratio: torch.Tensor, log_ratio: torch.Tensor, unclipped: torch.Tensor, clipped: torch.Tensor, mask: torch.Tensor
) -> Metrics:
    with torch.no_grad():
        return {
            "clip_fraction": _masked_mean((clipped > unclipped).float(), mask),
            "ratio_mean": _masked_mean(ratio, mask),
            "approx_kl": _masked_mean(-log_ratio, mask),
        }


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    dual_clip_c: float | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """PPO clipped surrogate (Schulman et al. 2017, eq. 7), per token, as a loss.

    ρ = exp(logp - old);  loss = max(-A·ρ, -A·clip(ρ, 1 - clip_low, 1 + clip_high)).
    `clip_high=None` means symmetric; a larger clip_high is DAPO's clip-higher (Yu et al. 2025).
    `dual_clip_c` (> 1) adds dual-clip PPO (Ye et al. 2020, arXiv 1912.09729): where A < 0 the loss
    is also capped at -A·c, bounding the step on very unlikely-now tokens. Follows verl
    `compute_policy_loss_vanilla`, including its clamp of log ρ to [-20, 20] against overflow.
    Clipped tokens get zero gradient. Shapes: see module docstring.
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    clip_high = clip_low if clip_high is None else clip_high
    if dual_clip_c is not None and dual_clip_c <= 1.0:
        raise ValueError(f"{_WHERE}: ppo_clip dual_clip_c must be > 1 (Ye et al. 2020), got {dual_clip_c}")
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    metrics = _clip_metrics(ratio, log_ratio, unclipped, clipped, mask)
    if dual_clip_c is not None:
        cap = -advantages * dual_clip_c
        negative = advantages < 0
        with torch.no_grad():
            metrics["dual_clip_fraction"] = _masked_mean((negative & (loss > cap)).float(), mask)
        loss = torch.where(negative, torch.minimum(loss, cap), loss)
    return loss, metrics


@POLICY_LOSSES.register("gspo")
def gspo(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
) -> tuple[torch.Tensor, Metrics]:
    """GSPO: sequence-level importance ratio (Zheng et al. 2025, arXiv 2507.18071, eqs. 5-7).

    s_i = exp( Σ_t m·(logp - old) / Σ_t m )  (the length-normalised sequence ratio);
    token form s_it = sg(s_i) · exp(logp - sg(logp)), equal to s_i in value;
    loss = max(-A·s_it, -A·clip(s_it, 1 - clip_low, 1 + clip_high)).

    The token form is the paper's GSPO-token (eq. 13) with one advantage per sequence; aggregated with
    `seq_mean_token_mean` its gradient equals that of the pure sequence objective, because each token
    carries s_i·∇logp_t and the mean over t gives s_i·∇(log s_i). Clipping is decided per sequence.
    Follows verl `compute_policy_loss_gspo`, including its clamp of log s_it at 10. The tiny default
    clip range is the paper's (3e-4 / 4e-4). Advantages should be per sequence ([N]).
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    token_log_ratio = logprobs - old_logprobs
    lengths = mask.sum(-1).clamp(min=1.0)
    seq_log_ratio = (torch.where(mask > 0, token_log_ratio, 0.0) * mask).sum(-1) / lengths  # [N]
    log_ratio = seq_log_ratio.detach().unsqueeze(-1) + logprobs - logprobs.detach()
    ratio = torch.exp(torch.clamp(log_ratio, max=10.0))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    metrics = _clip_metrics(ratio, token_log_ratio, unclipped, clipped, mask)
    return loss, metrics


@POLICY_LOSSES.register("gppo")
def gppo(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    official_dual_clip: bool = True,
    dual_clip_c: float = 3.0,
) -> tuple[torch.Tensor, Metrics]:
    """GPPO, gradient-preserving clipping (Klear-Reasoner, Su et al. 2025, arXiv 2508.07629).

    clipped = clamp(ρ, (1 - clip_low)/sg(ρ)·ρ, (1 + clip_high)/sg(ρ)·ρ): the forward value is the
    ordinary clip, but a clipped token's gradient is (1 ± ε)·A·∇logπ instead of 0.
    loss = max(-A·ρ, -A·clipped).

    `official_dual_clip=True` reproduces `Kwai-Klear/KlearReasoner` `verl/trainer/ppo/core_algos.py
    ::compute_gppo_loss` (commit 6dc5bb9): for A < 0, loss = min(loss, -A), i.e. a dual clip with
    c = 1; `dual_clip_c` is then unused (the official code also ignores its `clip_ratio_c`). QUIRK: for
    A < 0 and ρ > 1 the loss becomes the constant -A, so those tokens get ZERO gradient, and at ρ = 1
    exactly (the first on-policy step) torch.minimum splits the gradient of the tie, halving it. Their
    README shows the standard dual clip (-A·clip_ratio_c) instead; `official_dual_clip=False` gives
    that: for A < 0, loss = min(loss, -A·dual_clip_c), with dual_clip_c > 1. No log-ratio clamp, as
    in the official code.
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    if not official_dual_clip and dual_clip_c <= 1.0:
        raise ValueError(f"{_WHERE}: gppo dual_clip_c must be > 1 (Ye et al. 2020), got {dual_clip_c}")
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    frozen = ratio.detach()
    lower = (1.0 - clip_low) / frozen * ratio
    upper = (1.0 + clip_high) / frozen * ratio
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, lower, upper)
    loss = torch.maximum(unclipped, clipped)
    metrics = _clip_metrics(ratio, log_ratio, unclipped, clipped, mask)
    cap = -advantages if official_dual_clip else -advantages * dual_clip_c
    negative = advantages < 0
    with torch.no_grad():
        metrics["dual_clip_fraction"] = _masked_mean((negative & (loss > cap)).float(), mask)
    loss = torch.where(negative, torch.minimum(loss, cap), loss)
    return loss, metrics


@POLICY_LOSSES.register("reinforce")
def reinforce(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, **kw: object
) -> tuple[torch.Tensor, Metrics]:
    """Unclipped importance-weighted policy gradient: loss = -A·ρ, ρ = exp(logp - old).

    With old = sg(logp) this is ρ = exp(logp - sg(logp)) = 1 in value with gradient ∇logp: the
    single-update form of R1-AQA and TRL 0.15 (num_iterations = 1), i.e. plain REINFORCE with a
    baseline in A. Clip keywords from a shared config are accepted and ignored; clip_fraction is 0.
    log ρ is clamped to [-20, 20] as in ppo_clip.
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    loss = -advantages * ratio
    return loss, _clip_metrics(ratio, log_ratio, loss, loss, mask)
