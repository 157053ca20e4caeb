"""Per-token KL estimators between the policy and a reference: (logprobs, ref_logprobs) [N, T] -> [N, T].

The inputs are log-probabilities of the SAMPLED units under each model, so these are single-sample
Monte-Carlo estimates of KL(π_θ ‖ π_ref) (Schulman, "Approximating KL divergence", 2020,
http://joschu.net/blog/kl-approx.html). Masking is left to the aggregation.

Names and the frameworks they follow:

| name                               | formula                                   | framework                          |
|------------------------------------|-------------------------------------------|------------------------------------|
| `k1` (= `kl`)                      | log π_θ - log π_ref                       | verl `kl`/`k1`                     |
| `k2` (= `mse`)                     | ½(log π_θ - log π_ref)²                   | verl `mse`/`k2`                    |
| `k3` (= `low_var_kl`, `k3_clamped`) | k3 with log-ratio clamped to ±20, value to ±10 | verl `low_var_kl` and verl `k3` (both clamp) |
| `k3_unclamped`                     | k3 exactly                                | TRL `GRPOTrainer` (`per_token_kl`), R1-AQA |

The clamp of `k3` only acts on tokens whose reference is far from the policy (log π_ref - log π_θ
above ~2.5 gives k3 > 10): there the clamped value stops at 10 and its gradient is 0, while TRL's
keeps growing (tests/test_parity_trl.py, the far-reference batch). `k3` keeps its earlier meaning
(clamped, as verl); recipes built on TRL use `k3_unclamped` (recipes/README.md says which is which).
"""
from __future__ import annotations

import torch

from mmpost.registry import KL_ESTIMATORS

_WHERE = __name__


def _check(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(
            f"{_WHERE}: ref_logprobs {tuple(ref_logprobs.shape)} must match logprobs {tuple(logprobs.shape)}"
        )
    return ref_logprobs.detach()


@KL_ESTIMATORS.register("k1")
def k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k1 = log π_θ - log π_ref: unbiased for the KL value, high variance, can be negative. [N, T]."""
    return logprobs - _check(logprobs, ref_logprobs)


@KL_ESTIMATORS.register("k2")
def k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k2 = ½(log π_θ - log π_ref)²: biased value, but its gradient is the true KL gradient. [N, T]."""
    return 0.5 * (logprobs - _check(logprobs, ref_logprobs)).square()


@KL_ESTIMATORS.register("k3")
def k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 = π_ref/π_θ - log(π_ref/π_θ) - 1 (GRPO's KL term, DeepSeekMath eq. 4), CLAMPED as verl.

    verl `kl_penalty_forward("low_var_kl")` (also its "k3"): log(π_ref/π_θ) is clamped to [-20, 20]
    before exp and the result to [-10, 10], so one very unlikely token cannot blow up the loss; a
    clamped token has zero gradient. Registered as `k3`, `low_var_kl` and `k3_clamped`. [N, T].
    """
    log_ratio = torch.clamp(_check(logprobs, ref_logprobs) - logprobs, -20.0, 20.0)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)


@KL_ESTIMATORS.register("k3_unclamped")
def k3_unclamped(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 = π_ref/π_θ - log(π_ref/π_θ) - 1 without any clamp, exactly TRL `GRPOTrainer._compute_loss`:
    `exp(ref - logp) - (ref - logp) - 1`. Unbiased, >= 0; its value and gradient keep growing for
    tokens the reference finds far more likely than the policy. [N, T]."""
    log_ratio = _check(logprobs, ref_logprobs) - logprobs
    return torch.exp(log_ratio) - log_ratio - 1.0


def importance_weighted(kl_tokens: torch.Tensor, logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                        mask: torch.Tensor, *, level: str = "token") -> torch.Tensor:
    """KL_t · ρ: the per-token KL times the importance ratio π_θ/π_old, which makes the KL gradient the unbiased
    reverse-KL gradient when the rows were sampled from π_old (DeepSeek-V3.2, arXiv 2512.02556; TRL
    `use_bias_correction_kl=True`, its default since 1.x: `per_token_kl = per_token_kl * coef_1`).

    ρ is differentiable, so this changes the gradient even on-policy where ρ = 1 in value:
    ∇(KL·ρ) = ρ·∇KL + KL·ρ·∇logπ. `level="token"`: ρ_t = exp(logπ_t - logπ_old,t); `level="sequence"`
    (GSPO-style losses): one ρ per row, exp of the masked mean log ratio, broadcast over the row's tokens,
    as TRL with importance_sampling_level="sequence". No clamp, as TRL. Shapes: [N, T] (mask [N, T]) -> [N, T].
    """
    if level not in ("token", "sequence"):
        raise ValueError(f"{_WHERE}: importance level must be 'token' or 'sequence', got {level!r}")
    log_ratio = logprobs - old_logprobs.detach()
    if level == "sequence":
        mask = mask.to(log_ratio.dtype)
        log_ratio = (torch.where(mask > 0, log_ratio, 0.0) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    return kl_tokens * torch.exp(log_ratio)


KL_ESTIMATORS.add("kl", k1)
KL_ESTIMATORS.add("mse", k2)
KL_ESTIMATORS.add("low_var_kl", k3)
KL_ESTIMATORS.add("k3_clamped", k3)
