"""The denoising policy kind (mmpost/denoising.py): Flow-GRPO sampling, exact re-scoring, step masks, KL on means."""
import copy
import json
import math

import pytest
import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config

from mmpost.denoising import (
    GENERATOR_FILE, DenoisingPolicy, DenoisingProcessor, SamplerSettings, SDEBackend, flow_match_sigmas,
    flow_matching_loss, save_generator, trained_step_mask,
)
from mmpost.experience import RolloutBatch
from mmpost.rollout.base import SamplingParams

torch.set_num_threads(1)


class LabelTask:
    """Conditioning = a class label per sample."""

    name = "labels"

    def conditioning(self, sample):
        return {"class_labels": torch.tensor(sample["label"])}


def tiny_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       num_class_embeds=3, norm_num_groups=4)


def policy_from_folder(tmp_path, **sampler):
    sampler = {"latent_shape": [2, 8, 8], "num_steps": 4, "noise_level": 0.7, **sampler}
    save_generator(tiny_unet(), tmp_path / "gen", sampler=sampler, shift=3.0)
    model = DenoisingPolicy.load_model(None, str(tmp_path / "gen"))
    processor = DenoisingPolicy.load_processor(str(tmp_path / "gen"))
    return DenoisingPolicy(model, processor, LabelTask(), None)


def batch_from(policy, samples, result, n):
    prompts = policy.encode_prompts(samples)
    rows = len(result.completion_ids)
    return RolloutBatch(
        prompts=prompts, samples=samples, prompt_index=torch.arange(len(samples)).repeat_interleave(n),
        group_ids=torch.arange(len(samples)).repeat_interleave(n), completion_ids=torch.tensor(result.completion_ids),
        completion_mask=torch.tensor(result.masks), sources=["policy"] * rows, is_sft=torch.zeros(rows, dtype=torch.bool),
        completions=result.outputs, aux=result.aux,
    )


def rollout(policy, n=3, greedy=False, seed=0):
    samples = [{"id": "a", "label": 0}, {"id": "b", "label": 2}]
    backend = SDEBackend(policy.model, policy=policy, seed=seed)
    result = backend.generate(policy.encode_prompts(samples), samples, SamplingParams(n=n, greedy=greedy))
    return samples, result, batch_from(policy, samples, result, n)


def test_rescoring_the_sampled_chain_gives_ratio_one(tmp_path):
    policy = policy_from_folder(tmp_path)
    _, result, batch = rollout(policy)
    assert batch.aux["latents"].shape == (6, 5, 2, 8, 8) and batch.aux["sigmas"].shape == (6, 5)
    assert len(result.outputs) == 6 and result.outputs[0].shape == (2, 8, 8)
    assert all(o.min() >= -1 and o.max() <= 1 for o in result.outputs)
    sampled = torch.tensor(result.logprobs)
    rows = torch.arange(6)
    logprobs, extra = policy.logprobs(policy.model, batch, rows, temperature=1.0)
    assert logprobs.dtype == torch.float32 and logprobs.shape == (6, 4)
    assert (logprobs - sampled).abs().max().item() < 1e-6
    assert torch.exp(logprobs - sampled).sub(1).abs().max().item() < 1e-6
    # A micro-batch of rows re-scores the same values.
    part, _ = policy.logprobs(policy.model, batch, torch.tensor([4, 1]), temperature=1.0)
    assert torch.allclose(part, sampled[[4, 1]], atol=1e-5)
    # Gradients reach the velocity net through the step means.
    logprobs.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())


def test_greedy_is_the_euler_ode_with_zero_logprob_and_no_trained_steps(tmp_path):
    policy = policy_from_folder(tmp_path)
    _, result, batch = rollout(policy, n=2, greedy=True)
    assert torch.equal(torch.tensor(result.logprobs), torch.zeros(4, 4))
    assert torch.equal(torch.tensor(result.masks), torch.zeros(4, 4))
    latents, sigmas = batch.aux["latents"], policy.sigmas
    labels = torch.tensor([0, 0, 2, 2])
    x = latents[:, 0]
    with torch.no_grad():
        for k in range(4):
            velocity = policy.model(x, sigmas[k].expand(4) * 1000, class_labels=labels).sample
            x = x + velocity * (sigmas[k + 1] - sigmas[k])
            assert torch.allclose(latents[:, k + 1], x, atol=1e-5)
    # Two greedy rollouts from the same start noise agree (no SDE noise).
    _, again, _ = rollout(policy, n=2, greedy=True)
    assert torch.allclose(torch.stack(again.outputs), torch.stack(result.outputs))


def test_trained_step_specs():
    assert trained_step_mask("all", 4).tolist() == [True] * 4
    assert trained_step_mask("first:2", 5).tolist() == [True, True, False, False, False]
    assert trained_step_mask("window:1:3", 4).tolist() == [False, True, True, False]
    drawn = trained_step_mask("random:2", 6, generator=torch.Generator().manual_seed(0))
    assert int(drawn.sum()) == 2
    assert torch.equal(drawn, trained_step_mask("random:2", 6, generator=torch.Generator().manual_seed(0)))
    for bad in ("first:0", "first:5", "window:3:3", "window:1", "some", "random:x"):
        with pytest.raises(ValueError, match="train_steps"):
            trained_step_mask(bad, 4)


def test_only_trained_steps_are_stochastic_and_scored_with_sde_steps_trained(tmp_path):
    policy = policy_from_folder(tmp_path, train_steps="first:2", sde_steps="trained")
    _, result, batch = rollout(policy, n=2)
    assert result.masks[0] == [1.0, 1.0, 0.0, 0.0]
    sampled = torch.tensor(result.logprobs)
    assert torch.equal(sampled[:, 2:], torch.zeros(4, 2)) and (sampled[:, :2] != 0).all()
    logprobs, extra = policy.logprobs(policy.model, batch, torch.arange(4), temperature=1.0)
    assert extra["computed"][0].tolist() == [True, True, False, False]
    assert torch.equal(logprobs[:, 2:], torch.zeros(4, 2))
    assert (logprobs[:, :2] - sampled[:, :2]).abs().max() < 1e-6
    # Steps 2 and 3 are ODE steps: x_{k+1} = x_k + v·dt exactly.
    latents, sigmas, labels = batch.aux["latents"], policy.sigmas, torch.tensor([0, 0, 2, 2])
    with torch.no_grad():
        velocity = policy.model(latents[:, 2], sigmas[2].expand(4) * 1000, class_labels=labels).sample
    assert torch.allclose(latents[:, 3], latents[:, 2] + velocity * (sigmas[3] - sigmas[2]), atol=1e-5)


class TinyVideoVelocity(ModelMixin, ConfigMixin):
    """A 3-D conv velocity net for video-shaped latents [B, C, F, H, W] (no conditioning beyond a bias)."""

    @register_to_config
    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, sample, timestep, bias):
        return self.conv(sample) * (timestep / 1000).reshape(-1, 1, 1, 1, 1) + bias.reshape(-1, 1, 1, 1, 1)


class BiasTask:
    name = "bias"

    def conditioning(self, sample):
        return {"bias": torch.tensor(float(sample["bias"]))}


def video_policy():
    from diffusers import FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    settings = SamplerSettings.from_dict({"latent_shape": [2, 3, 4, 4], "num_steps": 3}, "test")
    processor = DenoisingProcessor(settings, FlowMatchEulerDiscreteScheduler(shift=1.0), "test:TinyVideoVelocity")
    return DenoisingPolicy(TinyVideoVelocity(), processor, BiasTask(), None)


def test_video_latent_logprob_is_the_gaussian_density_averaged_over_non_batch_dims():
    policy = video_policy()
    samples = [{"bias": 0.5}, {"bias": -1.0}]
    backend = SDEBackend(policy.model, policy=policy, seed=3)
    result = backend.generate(policy.encode_prompts(samples), samples, SamplingParams(n=2))
    batch = batch_from(policy, samples, result, 2)
    assert batch.aux["latents"].shape == (4, 4, 2, 3, 4, 4)
    logprobs, extra = policy.logprobs(policy.model, batch, torch.arange(4), temperature=1.0)
    sigmas, latents = policy.sigmas, batch.aux["latents"]
    for k in range(1, 3):  # steps below sigma = 1 (step 0 uses sigma_max in the std)
        std = 0.7 * math.sqrt(float(sigmas[k] / (1 - sigmas[k]))) * math.sqrt(float(sigmas[k] - sigmas[k + 1]))
        expected = torch.distributions.Normal(extra["means"][:, k].detach(), std).log_prob(latents[:, k + 1])
        assert torch.allclose(logprobs[:, k].detach(), expected.mean(dim=(1, 2, 3, 4)), atol=1e-5)
        assert not torch.allclose(logprobs[:, k].detach(), expected.sum(dim=(1, 2, 3, 4)), atol=1e-2)


def test_kl_on_step_means_is_zero_for_an_identical_reference_and_positive_after_a_change(tmp_path):
    policy = policy_from_folder(tmp_path)
    _, _, batch = rollout(policy, n=2)
    rows = torch.arange(4)
    reference = copy.deepcopy(policy.model)
    _, extra = policy.logprobs(policy.model, batch, rows, temperature=1.0)
    kl = policy.kl_terms(policy.model, reference, batch, rows, extra)
    assert kl.shape == (4, 4) and torch.equal(kl.detach(), torch.zeros(4, 4))
    with torch.no_grad():
        for parameter in policy.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    _, extra = policy.logprobs(policy.model, batch, rows, temperature=1.0)
    kl = policy.kl_terms(policy.model, reference, batch, rows, extra)
    assert (kl > 0).all()
    # The value is the official one: mean((μ - μ_ref)²) / (2 σ_t²) per step.
    with torch.no_grad():
        _, ref_extra = policy.logprobs(reference, batch, rows, temperature=1.0)
    by_hand = ((extra["means"][:, 2] - ref_extra["means"][:, 2]) ** 2).mean(dim=(1, 2, 3)) / (2 * extra["std_dev_t"][:, 2] ** 2)
    assert torch.allclose(kl[:, 2], by_hand, rtol=1e-5)
    kl.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())
    with pytest.raises(ValueError, match="reference"):
        policy.kl_terms(policy.model, None, batch, rows, extra)


def test_flow_matching_loss_decreases_on_a_toy():
    model = tiny_unet()
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    targets = torch.stack([torch.full((2, 8, 8), float(v) - 1.0) for v in labels])  # class c -> constant image c - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = flow_matching_loss(model, targets, {"class_labels": labels}, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_flow_matching_loss_target_is_noise_minus_data():
    class Oracle(torch.nn.Module):
        """Returns the true velocity, recovered from the same generator draws."""

        def forward(self, noisy, timestep, target):
            return target

    x0 = torch.randn(3, 4)
    draws = torch.Generator().manual_seed(5)  # the loss draws σ [B] first, then ε [B, ...]
    torch.rand(3, generator=draws)
    noise = torch.randn(3, 4, generator=draws)
    loss = flow_matching_loss(Oracle(), x0, {"target": noise - x0}, generator=torch.Generator().manual_seed(5))
    assert loss.item() == 0.0
    wrong = flow_matching_loss(Oracle(), x0, {"target": x0 - noise}, generator=torch.Generator().manual_seed(5))
    assert wrong.item() > 0.5


def test_schedule_matches_the_scheduler_and_bad_folders_raise_clearly(tmp_path):
    sigmas = flow_match_sigmas(4, shift=1.0)
    assert torch.allclose(sigmas, torch.tensor([1.0, 0.667, 0.334, 0.001, 0.0]), atol=1e-6)
    with pytest.raises(FileNotFoundError, match=GENERATOR_FILE):
        DenoisingPolicy.load_model(None, str(tmp_path))
    (tmp_path / GENERATOR_FILE).write_text(json.dumps({"model_class": "torch.nn:Linear", "sampler": {"latent_shape": [1]}}))
    with pytest.raises(ValueError, match="not a subclass of diffusers.ModelMixin"):
        DenoisingPolicy.load_model(None, str(tmp_path))
    with pytest.raises(ValueError, match="latent_shape"):
        SamplerSettings.from_dict({"num_steps": 3}, "gen.json")
    with pytest.raises(ValueError, match="gen.json.*train_steps"):
        SamplerSettings.from_dict({"latent_shape": [1], "train_steps": "first:9", "num_steps": 3}, "gen.json")


def test_flow_grpo_updates_raise_a_brightness_reward(tmp_path):
    """Sample -> reward -> flow_grpo advantages -> ppo_clip on re-scored step log-probs -> AdamW, a few times:
    the generator learns to brighten its samples (the whole Flow-GRPO loop on a tiny UNet, without the trainer)."""
    from mmpost.algos.advantages import flow_grpo
    from mmpost.algos.policy_losses import ppo_clip

    torch.manual_seed(0)
    policy = policy_from_folder(tmp_path, train_steps="first:3")
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
    backend = SDEBackend(policy.model, policy=policy, seed=0)
    samples = [{"id": str(c), "label": c} for c in range(3)]

    def brightness(n):
        result = backend.generate(policy.encode_prompts(samples), samples, SamplingParams(n=n))
        return result, torch.stack(result.outputs).mean(dim=(1, 2, 3))

    with torch.no_grad():
        before = brightness(16)[1].mean().item()
    for _ in range(12):
        result, rewards = brightness(8)
        batch = batch_from(policy, samples, result, 8)
        advantages = flow_grpo(rewards, batch.group_ids, clip_max=5.0)
        logprobs, _ = policy.logprobs(policy.model, batch, torch.arange(len(batch)), temperature=1.0)
        old = torch.tensor(result.logprobs)
        token_loss, _ = ppo_clip(logprobs, old, advantages, batch.completion_mask, clip_low=1e-4, clip_high=1e-4)
        loss = (token_loss * batch.completion_mask).sum() / batch.completion_mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = brightness(16)[1].mean().item()
    assert after > before + 0.1, (before, after)
