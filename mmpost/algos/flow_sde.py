"""Flow-GRPO's stochastic sampler step for flow-matching generators, with the log-probability of the step.

Paper: Liu et al., "Flow-GRPO: Training Flow Matching Models via Online RL" (arXiv 2505.05470), eq. 9-10.
Official code followed here: `yifan123/flow_grpo`, `flow_grpo/diffusers_patch/sd3_sde_with_logprob.py`
(`sde_step_with_logprob`, the `sde_type="sde"` branch) and the KL term in `scripts/train_sd3.py`.

The deterministic Euler step of the probability-flow ODE, x' = x + v·dt, is replaced by an SDE with the
same marginals, so each denoising step becomes a Gaussian policy π(x' | x) whose log-density the clipped
GRPO ratio can use. Conventions (diffusers `FlowMatchEulerDiscreteScheduler`): σ runs from 1 (noise) down
to 0 (data), x_σ = (1 - σ)·x_0 + σ·ε, the model predicts the velocity v = ε - x_0, and one step goes from
σ to σ_next < σ, so dt = σ_next - σ < 0.

These are engine-level tensor functions: they take σ values rather than a scheduler, so they need no
diffusers import and work for image latents [B, C, H, W] and video latents [B, C, T, H, W] alike.
"""
from __future__ import annotations

import math

import torch

_WHERE = __name__

SigmaLike = float | torch.Tensor


def _per_sample(value: SigmaLike, sample: torch.Tensor, name: str) -> torch.Tensor:
    """A float, a 0-d tensor, a [B] tensor or a [B, 1, ..., 1] tensor -> fp32 [B, 1, ..., 1] on sample's device."""
    batch, trailing = sample.shape[0], (1,) * (sample.ndim - 1)
    tensor = torch.as_tensor(value, dtype=torch.float32, device=sample.device)
    if tensor.ndim == 0:
        return tensor.expand(batch).reshape(batch, *trailing)
    if tensor.shape[0] != batch or tensor.numel() != batch:
        raise ValueError(
            f"{_WHERE}: {name} has shape {tuple(tensor.shape)}; expected a scalar, [{batch}] or "
            f"[{batch}, 1, ...] to match sample {tuple(sample.shape)}"
        )
    return tensor.reshape(batch, *trailing)


def _check_schedule(sigma: torch.Tensor, sigma_next: torch.Tensor, sigma_max: float | None) -> None:
    if not bool(((sigma > 0) & (sigma <= 1)).all()):
        raise ValueError(f"{_WHERE}: sigma must lie in (0, 1], got {sigma.flatten().tolist()}")
    if not bool((sigma_next < sigma).all()):
        raise ValueError(
            f"{_WHERE}: sigma_next must be smaller than sigma (sampling runs from noise to data), got "
            f"sigma={sigma.flatten().tolist()} sigma_next={sigma_next.flatten().tolist()}"
        )
    if not bool((sigma_next >= 0).all()):
        raise ValueError(f"{_WHERE}: sigma_next must be >= 0, got {sigma_next.flatten().tolist()}")
    if bool((sigma == 1).any()):
        if sigma_max is None:
            raise ValueError(
                f"{_WHERE}: sigma == 1 makes sqrt(sigma / (1 - sigma)) infinite; pass sigma_max (the official "
                "code uses the scheduler's second sigma, scheduler.sigmas[1]) to stand in for 1 - sigma"
            )
        if not 0 < sigma_max < 1:
            raise ValueError(f"{_WHERE}: sigma_max must lie in (0, 1), got {sigma_max}")


def sde_std_dev(sigma: torch.Tensor, noise_level: float, sigma_max: float | None = None) -> torch.Tensor:
    """Flow-GRPO's diffusion coefficient σ_t = a·sqrt(σ / (1 - σ)) (paper eq. 9, `std_dev_t` in the code).

    At σ = 1 the official code replaces the σ in the denominator by `sigma_max` (= `scheduler.sigmas[1]`,
    the first sigma below 1); the numerator keeps σ = 1. `sigma`: any shape, fp32. Returns the same shape.
    """
    denominator_sigma = sigma if sigma_max is None else torch.where(sigma == 1, sigma_max, sigma)
    return torch.sqrt(sigma / (1 - denominator_sigma)) * noise_level


def sde_step_with_logprob(
    velocity: torch.Tensor,
    sample: torch.Tensor,
    sigma: SigmaLike,
    sigma_next: SigmaLike,
    *,
    noise_level: float = 0.7,
    sigma_max: float | None = None,
    prev_sample: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Flow-GRPO SDE step x_σ -> x_σnext, sampled or (with `prev_sample`) re-scored, and its log-prob.

    With dt = σ_next - σ < 0 and σ_t = `sde_std_dev(σ)` (paper eq. 9-10, official `sde_step_with_logprob`):

        mean   = x·(1 + σ_t²/(2σ)·dt) + v·(1 + σ_t²·(1 - σ)/(2σ))·dt
        x_next = mean + σ_t·sqrt(-dt)·ε,                       ε ~ N(0, I)
        log p  = mean over non-batch dims of  -(x_next - mean)²/(2 s²) - log s - log sqrt(2π),  s = σ_t·sqrt(-dt)

    As in the official code: all math runs in fp32 whatever the input dtype (bf16 overflows in `mean`);
    the Gaussian constant log sqrt(2π) is kept; the log-density is AVERAGED, not summed, over the
    non-batch dims (so it is a per-element log-density, and ratios exp(Δ log p) are much milder than
    those of the full joint density); `prev_sample` is detached inside the log-density, so gradients flow
    only through `mean` (i.e. through `velocity`).

    noise_level = 0 gives s = 0: the step is the deterministic Euler ODE step x + v·dt, which has no
    density. Its log_prob is defined as 0 for every sample (and has zero gradient), so the ratio of such a
    step is exactly 1 and it contributes nothing to the policy gradient — how Flow-GRPO-Fast treats its
    ODE steps. The official formula would give NaN there.

    Args:
        velocity: model output v, [B, ...] (any float dtype).
        sample: current latent x_σ, same shape.
        sigma, sigma_next: current and next noise level: a float, or a [B] / [B, 1, ...] tensor; each
            σ in (0, 1] and 0 <= σ_next < σ.
        noise_level: a in σ_t = a·sqrt(σ/(1 - σ)); 0.7 in the official SD3.5 configs.
        sigma_max: stands in for σ in 1 - σ where σ == 1 (official: `scheduler.sigmas[1]`); required
            only if some σ == 1.
        prev_sample: a stored x_σnext to re-score instead of sampling, same shape as `sample`.
        generator: RNG for ε when sampling; ε is drawn on the generator's device, then moved.

    Returns:
        (prev_sample [B, ...] fp32, log_prob [B] fp32, prev_sample_mean [B, ...] fp32,
        std_dev_t [B, 1, ..., 1] fp32 — σ_t WITHOUT the sqrt(-dt) factor, as the official code returns it).
    """
    if velocity.shape != sample.shape:
        raise ValueError(f"{_WHERE}: velocity {tuple(velocity.shape)} must match sample {tuple(sample.shape)}")
    if sample.ndim < 2:
        raise ValueError(f"{_WHERE}: sample must be [B, ...] with at least one non-batch dim, got {tuple(sample.shape)}")
    if prev_sample is not None and prev_sample.shape != sample.shape:
        raise ValueError(
            f"{_WHERE}: prev_sample {tuple(prev_sample.shape)} must match sample {tuple(sample.shape)}"
        )
    if noise_level < 0:
        raise ValueError(f"{_WHERE}: noise_level must be >= 0, got {noise_level}")

    velocity, sample = velocity.float(), sample.float()
    sigma_t = _per_sample(sigma, sample, "sigma")
    sigma_next_t = _per_sample(sigma_next, sample, "sigma_next")
    _check_schedule(sigma_t, sigma_next_t, sigma_max)
    dt = sigma_next_t - sigma_t

    std_dev_t = sde_std_dev(sigma_t, noise_level, sigma_max)
    prev_sample_mean = (
        sample * (1 + std_dev_t**2 / (2 * sigma_t) * dt)
        + velocity * (1 + std_dev_t**2 * (1 - sigma_t) / (2 * sigma_t)) * dt
    )
    step_std = std_dev_t * torch.sqrt(-dt)

    if prev_sample is None:
        noise_device = generator.device if generator is not None else sample.device
        noise = torch.randn(sample.shape, generator=generator, device=noise_device, dtype=torch.float32)
        prev_sample = prev_sample_mean + step_std * noise.to(sample.device)
    else:
        prev_sample = prev_sample.float()

    # A zero std would give 0/0 and -log 0; a safe std keeps the masked-out branch (and its grad) finite.
    has_density = step_std > 0
    safe_std = torch.where(has_density, step_std, torch.ones_like(step_std))
    log_sqrt_two_pi = torch.log(torch.sqrt(torch.as_tensor(2 * math.pi, dtype=torch.float32, device=sample.device)))
    elementwise = (
        -((prev_sample.detach() - prev_sample_mean) ** 2) / (2 * safe_std**2) - torch.log(safe_std) - log_sqrt_two_pi
    )
    elementwise = torch.where(has_density, elementwise, torch.zeros_like(elementwise))
    log_prob = elementwise.mean(dim=tuple(range(1, elementwise.ndim)))
    return prev_sample, log_prob, prev_sample_mean, std_dev_t


def flow_grpo_kl(
    prev_sample_mean: torch.Tensor,
    ref_prev_sample_mean: torch.Tensor,
    std_dev_t: torch.Tensor,
    dt: SigmaLike | None = None,
) -> torch.Tensor:
    """Flow-GRPO's KL penalty between the policy's and the reference's step Gaussians. [B, ...] -> [B].

    Both steps are N(μ, s²I) with the same s, so KL = ‖μ_θ - μ_ref‖² / (2 s²) (paper eq. 12). As in the
    official trainer (`scripts/train_sd3.py`: `((prev_sample_mean - prev_sample_mean_ref)**2).mean(dim=(1,2,3))
    / (2 * std_dev_t**2)`), the squared distance is AVERAGED over the non-batch dims, and with `dt=None`
    the denominator is 2·σ_t² — `std_dev_t` as returned by `sde_step_with_logprob`, WITHOUT the step's
    sqrt(-dt) factor. That is the official value, and it equals the exact per-step KL times (-dt).
    Passing `dt` (σ_next - σ < 0; float, [B] or [B, 1, ...]) uses s² = σ_t²·(-dt) instead: the exact
    per-element KL of the step. `torch.mean` of the result is the official `kl_loss` (with `dt=None`).
    (The repo's newer `scripts/train_wan2_1.py` divides by 2·(std_dev_t·dt_ref)² from its own Wan step
    function instead; SD3 / the paper's setting is the `dt=None` value.)

    Args:
        prev_sample_mean: policy step mean μ_θ, [B, ...] (gradients flow through it).
        ref_prev_sample_mean: reference step mean μ_ref, same shape (detached here).
        std_dev_t: σ_t, a float/[B]/[B, 1, ...] tensor (the 4th output of `sde_step_with_logprob`); > 0.
        dt: optional step size, see above.
    """
    if prev_sample_mean.shape != ref_prev_sample_mean.shape:
        raise ValueError(
            f"{_WHERE}: ref_prev_sample_mean {tuple(ref_prev_sample_mean.shape)} must match "
            f"prev_sample_mean {tuple(prev_sample_mean.shape)}"
        )
    if prev_sample_mean.ndim < 2:
        raise ValueError(f"{_WHERE}: means must be [B, ...] with a non-batch dim, got {tuple(prev_sample_mean.shape)}")
    mean = prev_sample_mean.float()
    variance = _per_sample(std_dev_t, mean, "std_dev_t") ** 2
    if not bool((variance > 0).all()):
        raise ValueError(f"{_WHERE}: std_dev_t must be > 0 for the KL (noise_level 0 steps have no KL)")
    if dt is not None:
        dt_t = _per_sample(dt, mean, "dt")
        if not bool((dt_t < 0).all()):
            raise ValueError(f"{_WHERE}: dt = sigma_next - sigma must be < 0, got {dt_t.flatten().tolist()}")
        variance = variance * -dt_t
    squared_distance = (mean - ref_prev_sample_mean.detach().float()) ** 2
    non_batch = tuple(range(1, mean.ndim))
    return squared_distance.mean(dim=non_batch) / (2 * variance.reshape(-1))
