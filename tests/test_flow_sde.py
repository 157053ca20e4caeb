"""Flow-GRPO SDE step and KL (mmpost/algos/flow_sde.py) against values worked out by hand.

Hand example used below: x = [1, 2], v = [2, -4], σ = 0.5, σ_next = 0.25, noise_level a = 0.5.
  σ_t = a·sqrt(σ/(1-σ)) = 0.5, dt = -0.25, step std s = σ_t·sqrt(-dt) = 0.25
  x coefficient 1 + σ_t²/(2σ)·dt = 1 - 0.0625 = 0.9375
  v coefficient (1 + σ_t²(1-σ)/(2σ))·dt = 1.125·(-0.25) = -0.28125
  mean = [0.9375 - 0.5625, 1.875 + 1.125] = [0.375, 3.0]
  x_next = [0.625, 2.5] -> z = (x_next - mean)/s = [1, -2]
  log p per element = -z²/2 + log 4 - log sqrt(2π) = [-0.5, -2] + log 4 - log sqrt(2π)
"""
import math

import pytest
import torch

from mmpost.algos.flow_sde import flow_grpo_kl, sde_std_dev, sde_step_with_logprob

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def hand_example():
    sample = torch.tensor([[1.0, 2.0]])
    velocity = torch.tensor([[2.0, -4.0]])
    prev = torch.tensor([[0.625, 2.5]])
    return velocity, sample, prev


def test_hand_computed_mean_std_and_logprob_is_a_mean_over_non_batch_dims():
    velocity, sample, prev = hand_example()
    out_prev, log_prob, mean, std_dev_t = sde_step_with_logprob(
        velocity, sample, 0.5, 0.25, noise_level=0.5, prev_sample=prev
    )
    assert torch.equal(out_prev, prev)
    assert torch.allclose(mean, torch.tensor([[0.375, 3.0]]), atol=1e-7)
    assert std_dev_t.shape == (1, 1)
    assert std_dev_t.item() == pytest.approx(0.5)
    assert log_prob.shape == (1,)
    mean_over_elements = (-0.5 - 2.0) / 2 + math.log(4) - LOG_SQRT_2PI
    summed_over_elements = (-0.5 - 2.0) + 2 * (math.log(4) - LOG_SQRT_2PI)
    assert log_prob.item() == pytest.approx(mean_over_elements, abs=1e-6)
    assert log_prob.item() != pytest.approx(summed_over_elements, abs=1e-3)


def test_logprob_matches_torch_normal_averaged_over_a_video_shaped_latent():
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(3, 2, 2, 3, 4, generator=generator)
    velocity = torch.randn(3, 2, 2, 3, 4, generator=generator)
    prev, log_prob, mean, std_dev_t = sde_step_with_logprob(
        velocity, sample, 0.8, 0.6, noise_level=0.7, generator=generator
    )
    assert std_dev_t.shape == (3, 1, 1, 1, 1)
    step_std = std_dev_t * math.sqrt(0.2)
    expected = torch.distributions.Normal(mean, step_std).log_prob(prev).mean(dim=(1, 2, 3, 4))
    assert torch.allclose(log_prob, expected, atol=1e-5)


def test_resampled_step_rescored_with_same_inputs_gives_ratio_exactly_one():
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(4, 3, 5, 5, generator=generator)
    velocity = torch.randn(4, 3, 5, 5, generator=generator).requires_grad_(True)
    with torch.no_grad():
        prev, old_log_prob, _, _ = sde_step_with_logprob(
            velocity, sample, 0.9, 0.7, generator=torch.Generator().manual_seed(2)
        )
    _, new_log_prob, _, _ = sde_step_with_logprob(velocity, sample, 0.9, 0.7, prev_sample=prev)
    assert torch.equal(new_log_prob.detach(), old_log_prob)
    ratio = torch.exp(new_log_prob - old_log_prob)
    assert torch.equal(ratio.detach(), torch.ones(4))
    (grad,) = torch.autograd.grad(ratio.sum(), velocity)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_generator_makes_sampling_reproducible():
    sample, velocity = torch.zeros(2, 6), torch.ones(2, 6)
    first = sde_step_with_logprob(velocity, sample, 0.5, 0.4, generator=torch.Generator().manual_seed(7))[0]
    second = sde_step_with_logprob(velocity, sample, 0.5, 0.4, generator=torch.Generator().manual_seed(7))[0]
    third = sde_step_with_logprob(velocity, sample, 0.5, 0.4, generator=torch.Generator().manual_seed(8))[0]
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_noise_level_zero_is_the_deterministic_euler_ode_step_with_logprob_zero():
    velocity, sample, _ = hand_example()
    velocity = velocity.clone().requires_grad_(True)
    prev, log_prob, mean, std_dev_t = sde_step_with_logprob(
        velocity, sample, 0.5, 0.25, noise_level=0.0, generator=torch.Generator().manual_seed(0)
    )
    euler = torch.tensor([[1.0 + 2.0 * -0.25, 2.0 - 4.0 * -0.25]])  # x + v·dt = [0.5, 3.0]
    assert torch.equal(prev.detach(), euler) and torch.equal(mean.detach(), euler)
    assert std_dev_t.item() == 0.0
    assert torch.equal(log_prob.detach(), torch.zeros(1))
    (grad,) = torch.autograd.grad(log_prob.sum(), velocity)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_empirical_std_of_many_samples_matches_std_dev_t_times_sqrt_minus_dt():
    generator = torch.Generator().manual_seed(3)
    sample = torch.full((1, 200_000), 0.3)
    velocity = torch.full((1, 200_000), -1.2)
    prev, _, mean, std_dev_t = sde_step_with_logprob(
        velocity, sample, 0.6, 0.4, noise_level=0.7, generator=generator
    )
    expected_std = 0.7 * math.sqrt(0.6 / 0.4) * math.sqrt(0.2)  # ≈ 0.3834
    assert std_dev_t.item() == pytest.approx(0.7 * math.sqrt(1.5), rel=1e-6)
    residual = prev - mean
    assert residual.std().item() == pytest.approx(expected_std, rel=0.01)
    assert abs(residual.mean().item()) < 0.005


def test_sigma_one_uses_sigma_max_in_the_denominator_only():
    sample, velocity = torch.zeros(1, 2), torch.zeros(1, 2)
    _, _, _, std_dev_t = sde_step_with_logprob(velocity, sample, 1.0, 0.8, noise_level=0.5, sigma_max=0.8)
    assert std_dev_t.item() == pytest.approx(0.5 * math.sqrt(1.0 / 0.2), rel=1e-6)
    with pytest.raises(ValueError, match="sigma_max"):
        sde_step_with_logprob(velocity, sample, 1.0, 0.8)
    # Below 1, sigma_max changes nothing.
    assert sde_std_dev(torch.tensor(0.5), 0.5, sigma_max=0.8).item() == pytest.approx(0.5)


def test_computes_in_float32_for_bfloat16_inputs():
    generator = torch.Generator().manual_seed(4)
    sample = torch.randn(2, 4, 4, generator=generator).bfloat16()
    velocity = torch.randn(2, 4, 4, generator=generator).bfloat16()
    prev, log_prob, mean, std_dev_t = sde_step_with_logprob(
        velocity, sample, 0.7, 0.5, generator=torch.Generator().manual_seed(5)
    )
    assert {t.dtype for t in (prev, log_prob, mean, std_dev_t)} == {torch.float32}
    _, log_prob_fp32, mean_fp32, _ = sde_step_with_logprob(
        velocity.float(), sample.float(), 0.7, 0.5, prev_sample=prev
    )
    assert torch.equal(log_prob, log_prob_fp32) and torch.equal(mean, mean_fp32)
    _, rescored, _, _ = sde_step_with_logprob(velocity, sample, 0.7, 0.5, prev_sample=prev.bfloat16())
    assert rescored.dtype == torch.float32


def test_per_sample_sigmas_equal_separate_calls():
    generator = torch.Generator().manual_seed(6)
    sample = torch.randn(2, 3, 2, generator=generator)
    velocity = torch.randn(2, 3, 2, generator=generator)
    prev = torch.randn(2, 3, 2, generator=generator)
    sigmas, sigmas_next = torch.tensor([0.9, 0.4]), torch.tensor([0.7, 0.1])
    _, batched, _, std_dev_t = sde_step_with_logprob(velocity, sample, sigmas, sigmas_next, prev_sample=prev)
    for i in range(2):
        _, single, _, single_std = sde_step_with_logprob(
            velocity[i : i + 1], sample[i : i + 1], sigmas[i].item(), sigmas_next[i].item(), prev_sample=prev[i : i + 1]
        )
        assert torch.allclose(batched[i], single[0]) and torch.allclose(std_dev_t[i], single_std[0])


def test_bad_inputs_raise_clear_errors():
    sample, velocity = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mmpost.algos.flow_sde.*sigma_next must be smaller"):
        sde_step_with_logprob(velocity, sample, 0.4, 0.5)
    with pytest.raises(ValueError, match="velocity"):
        sde_step_with_logprob(torch.zeros(2, 4), sample, 0.5, 0.4)
    with pytest.raises(ValueError, match="prev_sample"):
        sde_step_with_logprob(velocity, sample, 0.5, 0.4, prev_sample=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="sigma has shape"):
        sde_step_with_logprob(velocity, sample, torch.tensor([0.5, 0.5, 0.5]), 0.4)
    with pytest.raises(ValueError, match=r"sigma must lie in \(0, 1\]"):
        sde_step_with_logprob(velocity, sample, 0.0, -0.1)


def test_kl_is_zero_for_equal_means_and_matches_hand_values():
    means = torch.randn(3, 2, 4, 4)
    assert torch.equal(flow_grpo_kl(means, means.clone(), torch.full((3, 1, 1, 1), 0.3)), torch.zeros(3))

    policy_mean = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    ref_mean = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    std_dev_t = torch.tensor([0.5, 0.5])
    # official: mean((1, 4)) / (2·0.5²) = 2.5 / 0.5 = 5
    kl = flow_grpo_kl(policy_mean, ref_mean, std_dev_t)
    assert torch.allclose(kl, torch.tensor([5.0, 0.0]))
    # exact step KL divides by s² = σ_t²·(-dt): 2.5 / (2·0.25·0.25) = 20
    assert torch.allclose(flow_grpo_kl(policy_mean, ref_mean, std_dev_t, dt=-0.25), torch.tensor([20.0, 0.0]))
    (grad,) = torch.autograd.grad(kl.sum(), policy_mean)
    # d/dμ [ mean((μ-μref)²) / (2σ_t²) ] = 2(μ-μref)/(2 elements) / 0.5 = 2(μ-μref)
    assert torch.allclose(grad, torch.tensor([[2.0, 4.0], [0.0, 0.0]]))


def test_kl_with_dt_is_the_gaussian_kl_of_the_two_step_distributions():
    generator = torch.Generator().manual_seed(9)
    sample = torch.randn(2, 3, 3, generator=generator)
    velocity = torch.randn(2, 3, 3, generator=generator)
    ref_velocity = torch.randn(2, 3, 3, generator=generator)
    _, _, mean, std_dev_t = sde_step_with_logprob(velocity, sample, 0.8, 0.5, generator=generator)
    _, _, ref_mean, _ = sde_step_with_logprob(ref_velocity, sample, 0.8, 0.5, generator=generator)
    step_std = std_dev_t * math.sqrt(0.3)
    exact = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, step_std), torch.distributions.Normal(ref_mean, step_std)
    ).mean(dim=(1, 2))
    assert torch.allclose(flow_grpo_kl(mean, ref_mean, std_dev_t, dt=-0.3), exact, rtol=1e-5)
    assert torch.allclose(flow_grpo_kl(mean, ref_mean, std_dev_t), exact * 0.3, rtol=1e-5)
    with pytest.raises(ValueError, match="std_dev_t must be > 0"):
        flow_grpo_kl(mean, ref_mean, torch.zeros(2))
    with pytest.raises(ValueError, match="dt"):
        flow_grpo_kl(mean, ref_mean, std_dev_t, dt=0.3)
