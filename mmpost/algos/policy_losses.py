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
    `compute_policy_loss_vanilla`, including its clamp of log ρ to [-20, 20] against overflow (verl
    always applies its dual clip, c = `clip_ratio_c` = 3 by default; here only when `dual_clip_c` is
    set). TRL's `delta` (the unclipped ratio clamped at δ, for either sign of A) gives the same loss and
    gradient as `dual_clip_c = δ` whenever δ > 1 + clip_high. Clipped tokens get zero gradient.
    Numbers from both frameworks' own code: tests/test_parity_trl.py, tests/test_parity_verl.py.
    Shapes: see module docstring.
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    clip_high = clip_low if clip_high is None else clip_high
    if dual_clip_c is not None and dual_clip_c <= 1.0:  # checked before any work, as verl asserts it first
        raise ValueError(f"{_WHERE}: ppo_clip dual_clip_c must be > 1 (Ye et al. 2020), got {dual_clip_c}")
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    metrics = _clip_metrics(ratio, log_ratio, unclipped, clipped, mask)
    if dual_clip_c is not None:
        loss = _dual_clip(loss, advantages, dual_clip_c, mask, metrics)
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
    dual_clip_c: float | None = None,
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
    TRL's `importance_sampling_level="sequence"` computes the same value and gradient (its ratio is
    exp of the masked mean log ratio, one per sequence, without the clamp at 10); `dual_clip_c` caps
    the loss at -A·c where A < 0, which equals TRL's `delta` (it clamps the unclipped ratio at δ)
    whenever δ > 1 + clip_high. Parity with TRL's own loss: tests/test_parity_trl.py.
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
    if dual_clip_c is not None:
        loss = _dual_clip(loss, advantages, dual_clip_c, mask, metrics)
    return loss, metrics


def _dual_clip(loss: torch.Tensor, advantages: torch.Tensor, c: float, mask: torch.Tensor, metrics: Metrics) -> torch.Tensor:
    """Dual-clip PPO (Ye et al. 2020): where A < 0, loss = min(loss, -A·c); c > 1. Adds `dual_clip_fraction`."""
    if c <= 1.0:
        raise ValueError(f"{_WHERE}: dual_clip_c must be > 1 (Ye et al. 2020), got {c}")
    cap = -advantages * c
    negative = advantages < 0
    with torch.no_grad():
        metrics["dual_clip_fraction"] = _masked_mean((negative & (loss > cap)).float(), mask)
    return torch.where(negative, torch.minimum(loss, cap), loss)


gspo.importance_sampling_level = "sequence"  # type: ignore[attr-defined]  (one ratio per row; see kl.importance_weighted)


@POLICY_LOSSES.register("gppo")
def gppo(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip_c: float = 3.0,
    dual_clip_at_one: bool = False,
) -> tuple[torch.Tensor, Metrics]:
    """GPPO, gradient-preserving clipping (Klear-Reasoner, Su et al. 2025, arXiv 2508.07629).

    clipped = clamp(ρ, (1 - clip_low)/sg(ρ)·ρ, (1 + clip_high)/sg(ρ)·ρ): the forward value is the
    ordinary clip, but a clipped token's gradient is (1 ± ε)·A·∇logπ instead of 0.
    loss = max(-A·ρ, -A·clipped), then for A < 0 the dual clip loss = min(loss, -A·dual_clip_c).

    Follows `Kwai-Klear/KlearReasoner` `verl/trainer/ppo/core_algos.py::compute_gppo_loss` as fixed in
    commit e0f7bb1 ("fix dual clip bug": `pg_losses3 = -advantages * clip_ratio_c`, c = 3.0 by
    default), which is also the formula in their README. No log-ratio clamp, as in that code.
    `dual_clip_at_one=True` reproduces the code before that fix (commit 6dc5bb9: `pg_losses3 =
    -advantages`, c = 1), under which tokens with A < 0 and ρ > 1 get ZERO gradient and at ρ = 1 exactly
    torch.minimum splits the gradient of the tie, halving it. The repository's HEAD (169f3b3 onwards)
    adds `only_high` but reads an undefined `only_higher`, so HEAD's function raises NameError when
    called; the parity fixture runs e0f7bb1 and 6dc5bb9 (tests/test_parity_verl.py).
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    if not dual_clip_at_one and dual_clip_c <= 1.0:
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
    if dual_clip_at_one:
        cap, negative = -advantages, advantages < 0
        with torch.no_grad():
            metrics["dual_clip_fraction"] = _masked_mean((negative & (loss > cap)).float(), mask)
        return torch.where(negative, torch.minimum(loss, cap), loss), metrics
    return _dual_clip(loss, advantages, dual_clip_c, mask, metrics), metrics


@POLICY_LOSSES.register("reinforce")
def reinforce(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, **kw: object
) -> tuple[torch.Tensor, Metrics]:
    """Unclipped importance-weighted policy gradient: loss = -A·ρ, ρ = exp(logp - old).

    With old = sg(logp) this is ρ = exp(logp - sg(logp)) = 1 in value with gradient ∇logp: the
    single-update form of R1-AQA and TRL 0.15 (num_iterations = 1), i.e. plain REINFORCE with a
    baseline in A. With a stale `old` (several mini-batches) it is HPT's `loss_remove_clip=True`
    (Unify-Post-Training `compute_policy_loss`: `pg_losses = -advantages * ratio`, the clipped term
    dropped; that code has no log-ratio clamp). It has no options (clip keywords in a config fail
    `mmpost validate`; the `**kw` only serves direct callers); clip_fraction is 0.
    log ρ is clamped to [-20, 20] as in ppo_clip.
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    loss = -advantages * ratio
    return loss, _clip_metrics(ratio, log_ratio, loss, loss, mask)


@POLICY_LOSSES.register("cispo")
def cispo(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ratio_min: float | None = None,
    ratio_max: float | None = 5.0,
) -> tuple[torch.Tensor, Metrics]:
    """CISPO (MiniMax-M1, arXiv 2506.13585, eq. 4): loss = -sg(clamp(ρ, ratio_min, ratio_max))·A·log π.

    The importance weight is clipped and detached, so every token keeps a gradient A·w·∇logπ (none is
    dropped as in PPO's clip). Bounds are given on the ratio itself: TRL `loss_type="cispo"` uses
    (None, epsilon_high) (`torch.clamp(coef_1, max=self.epsilon_high)`); verl "cispo" uses
    (1 - clip_ratio_low, 1 + clip_ratio_high) and clamps log ρ to [-20, 20] (done here too; it only
    matters beyond e^20). TRL aggregates cispo like "dapo" (`token_mean` with the global count).
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    weight = ratio.detach()
    if ratio_min is not None or ratio_max is not None:
        weight = torch.clamp(weight, min=ratio_min, max=ratio_max)
    loss = -weight * advantages * logprobs
    with torch.no_grad():
        metrics = {
            "clip_fraction": _masked_mean((weight != ratio).float(), mask),
            "ratio_mean": _masked_mean(ratio, mask),
            "approx_kl": _masked_mean(-log_ratio, mask),
        }
    return loss, metrics


@POLICY_LOSSES.register("sapo")
def sapo(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature_pos: float = 1.0,
    temperature_neg: float = 1.05,
) -> tuple[torch.Tensor, Metrics]:
    """SAPO, soft adaptive policy optimisation (arXiv 2511.20347): a smooth gate instead of a hard clip.

    loss = -f(ρ)·A with f(ρ) = σ(τ·(ρ - 1))·4/τ, τ = temperature_pos where A > 0 else temperature_neg;
    f'(1) = 1, so on-policy the gradient is the plain policy gradient. As TRL `loss_type="sapo"`
    (`sapo_temperature_pos/neg`, defaults 1.0 / 1.05) and verl "sapo" (`tau_pos/tau_neg`), verl also
    clamping log ρ to [-20, 20] (done here). Both aggregate it with seq_mean_token_mean.
    """
    old_logprobs, advantages, mask = _prepare(logprobs, old_logprobs, advantages, mask)
    if temperature_pos <= 0 or temperature_neg <= 0:
        raise ValueError(f"{_WHERE}: sapo temperatures must be > 0, got {temperature_pos}, {temperature_neg}")
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    tau = torch.where(advantages > 0, torch.full_like(advantages, temperature_pos), torch.full_like(advantages, temperature_neg))
    loss = -torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau) * advantages
    return loss, _clip_metrics(ratio, log_ratio, loss, loss, mask)
