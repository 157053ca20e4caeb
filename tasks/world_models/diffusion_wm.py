"""An action-conditioned flow-matching frame generator: the diffusion world model of RLIR (issue #5).

Design (chosen for the DotGrid toy, documented so the World-Env work can reuse it):
- JOINT chunk generation: one denoising chain produces the next F frames at once; the latent is
  [B, F, H, W] (the F frames are the UNet's channels). Longer action sequences are generated chunk by chunk,
  each chunk conditioned on the last `context_frames` frames (`sample_frames` does this), so F = 1 is the
  one-step model and F > 1 a chunked one. A Flow-GRPO rollout is one chain = one chunk.
- Context frame(s) enter as extra input channels (concatenated to the noisy latent, as in image-to-video
  diffusion models); actions enter as a vector added to the UNet's timestep embedding (diffusers
  `class_embed_type="identity"`). Discrete ids [B, F] go through a class embedding by default
  (`action_encoder="embedding"`: one N(0, 1)-initialised row per (frame, action), summed over frames, i.e. diffusers'
  `num_class_embeds` for F = 1); continuous vectors [B, F, D] through an MLP (`"mlp"`, also allowed for ids as
  one-hots). The encoder matters for RLIR: at the MLP's default init the five action vectors differ by ~0.5 in norm
  (N(0, 1) rows: ~7.5; the timestep embedding: ~1.3), and after 150 flow-matching steps the generator still
  ignored the action (same IDM read-out whatever action it was given), which leaves Flow-GRPO no action-dependent
  variation to reinforce; with the embedding the action is used from the first SFT steps
  (recipes/rlir_diffusion.md).
- Pixel space, no VAE: uint8 frames map to [-1, 1] (`frames_to_model`), generated frames map back with
  `frames_to_uint8` (clamped), which is what the IDM reads.
- Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023; the SD3 convention of diffusers'
  `FlowMatchEulerDiscreteScheduler`): x_σ = (1 - σ)·x_0 + σ·ε, the net predicts v = ε - x_0 and sees the
  timestep σ·1000. Training is `mmpost.denoising.flow_matching_loss`; sampling is Flow-GRPO's SDE step
  (`mmpost.algos.flow_sde`), which with noise_level = 0 is the Euler ODE step.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from torch import nn

from mmpost.algos.flow_sde import sde_step_with_logprob
from mmpost.denoising import flow_match_sigmas, flow_matching_loss

_WHERE = __name__
ACTION_KINDS = ("discrete", "continuous")
ACTION_ENCODERS = ("embedding", "mlp")


class ActionConditionedFrameModel(ModelMixin, ConfigMixin):
    """Velocity net v(x_σ, σ | context frames, actions) for F future frames.

    forward(sample [B, F, H, W], timestep [B] (= σ·1000), context [B, C, H, W], actions long [B, F] (discrete) or
    float [B, F, D] (continuous)) -> velocity [B, F, H, W]. Saved with `save_pretrained` (safetensors + config.json).
    """

    @register_to_config
    def __init__(self, frame_size: int = 8, num_frames: int = 1, context_frames: int = 1, action_kind: str = "discrete",
                 num_actions: int = 5, action_dim: int = 2, block_out_channels: Sequence[int] = (16, 32),
                 layers_per_block: int = 1, norm_num_groups: int = 4, action_encoder: str | None = None) -> None:
        super().__init__()
        if action_kind not in ACTION_KINDS:
            raise ValueError(f"{_WHERE}: action_kind must be one of {ACTION_KINDS}, got {action_kind!r}")
        encoder = action_encoder or ("embedding" if action_kind == "discrete" else "mlp")
        if encoder not in ACTION_ENCODERS or (encoder == "embedding" and action_kind != "discrete"):
            raise ValueError(f"{_WHERE}: action_encoder must be one of {ACTION_ENCODERS} ('embedding' only for discrete "
                             f"actions), got {action_encoder!r} for action_kind {action_kind!r}")
        if frame_size % (2 ** (len(block_out_channels) - 1)):
            raise ValueError(f"{_WHERE}: frame_size {frame_size} must be divisible by 2^(levels-1) for the UNet")
        levels = len(block_out_channels)
        time_embed_dim = block_out_channels[0] * 4
        self.unet = UNet2DModel(
            sample_size=frame_size, in_channels=num_frames + context_frames, out_channels=num_frames,
            block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
            class_embed_type="identity", norm_num_groups=norm_num_groups,
        )
        per_frame = num_actions if action_kind == "discrete" else action_dim
        if encoder == "embedding":
            # nn.Embedding's N(0, 1) init, as diffusers' num_class_embeds: row f·A + a_f for frame f, summed over frames.
            self.action_embedding = nn.Embedding(num_frames * num_actions, time_embed_dim)
        else:
            self.action_embedding = nn.Sequential(
                nn.Linear(num_frames * per_frame, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
            )
        self.action_encoder = encoder

    def embed_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """[B, F] action ids or [B, F, D] action vectors -> [B, time_embed_dim]."""
        config = self.config
        if config.action_kind == "discrete":
            if actions.dim() != 2 or actions.shape[1] != config.num_frames:
                raise ValueError(f"{_WHERE}: discrete actions must be [B, {config.num_frames}] ids, got {list(actions.shape)}")
            if actions.dtype.is_floating_point or bool(((actions < 0) | (actions >= config.num_actions)).any()):
                raise ValueError(f"{_WHERE}: discrete actions must be integer ids in 0..{config.num_actions - 1}")
            if self.action_encoder == "embedding":
                frame_offsets = torch.arange(config.num_frames, device=actions.device) * config.num_actions
                return self.action_embedding(actions.long() + frame_offsets).sum(1)
            features = nn.functional.one_hot(actions.long(), config.num_actions).float()
        else:
            if actions.dim() != 3 or actions.shape[1:] != (config.num_frames, config.action_dim):
                raise ValueError(f"{_WHERE}: continuous actions must be [B, {config.num_frames}, {config.action_dim}], "
                                 f"got {list(actions.shape)}")
            features = actions.float()
        dtype = next(self.action_embedding.parameters()).dtype
        return self.action_embedding(features.flatten(1).to(dtype))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, context: torch.Tensor,
                actions: torch.Tensor) -> torch.Tensor:
        config = self.config
        expected = (config.num_frames, config.frame_size, config.frame_size)
        if sample.shape[1:] != expected:
            raise ValueError(f"{_WHERE}: sample must be [B, {', '.join(map(str, expected))}], got {list(sample.shape)}")
        if context.shape != (sample.shape[0], config.context_frames, config.frame_size, config.frame_size):
            raise ValueError(f"{_WHERE}: context must be [B, {config.context_frames}, H, W] matching sample, "
                             f"got {list(context.shape)}")
        timestep = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32)
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        inputs = torch.cat([sample, context.to(sample.dtype)], dim=1)
        return self.unet(inputs, timestep, class_labels=self.embed_actions(actions)).sample


def frames_to_model(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 frames (any shape) in [0, 255] -> float32 in [-1, 1]."""
    return torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames).float() / 127.5 - 1.0


def frames_to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Model-space frames in [-1, 1] (values outside are clamped) -> uint8 [0, 255], same shape."""
    return ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def sample_frames(model: ActionConditionedFrameModel, context: torch.Tensor, actions: torch.Tensor, *, steps: int = 8,
                  generator: torch.Generator | None = None, noise_level: float = 0.0, shift: float = 1.0) -> torch.Tensor:
    """Generate the frames that follow `context` under `actions`, chunk by chunk (F = model.config.num_frames).

    context: [B, C, H, W] model-space frames (C = context_frames; uint8 input is converted with `frames_to_model`);
    actions: [B, L] ids or [B, L, D] vectors with L a multiple of F. Each chunk runs `steps` Flow-GRPO SDE steps
    (noise_level 0 = the deterministic Euler ODE) on the shifted flow-matching sigma schedule.
    Returns model-space frames [B, L, H, W] (unclamped; `frames_to_uint8` for pixels).
    """
    config = model.config
    if context.dtype == torch.uint8:
        context = frames_to_model(context)
    chunk, length = config.num_frames, actions.shape[1]
    if length % chunk:
        raise ValueError(f"{_WHERE}: {length} actions is not a multiple of the model's {chunk} frames per chunk")
    parameter = next(model.parameters())
    context = context.to(parameter.device, parameter.dtype)
    sigmas = flow_match_sigmas(steps, shift=shift)
    frames = []
    for start in range(0, length, chunk):
        latent = torch.randn((context.shape[0], chunk, config.frame_size, config.frame_size), generator=generator,
                             device=generator.device if generator is not None else parameter.device).to(parameter.device)
        chunk_actions = actions[:, start : start + chunk].to(parameter.device)
        for k in range(steps):
            velocity = model(latent.to(parameter.dtype), float(sigmas[k]) * 1000, context=context, actions=chunk_actions)
            latent, _, _, _ = sde_step_with_logprob(velocity, latent, float(sigmas[k]), float(sigmas[k + 1]),
                                                    noise_level=noise_level, sigma_max=float(sigmas[1]), generator=generator)
        frames.append(latent)
        context = torch.cat([context, latent.to(context.dtype)], dim=1)[:, -config.context_frames :]
    return torch.cat(frames, dim=1)


def trajectory_chunks(trajectories: dict, *, num_frames: int, context_frames: int) -> dict[str, torch.Tensor]:
    """Every (context, next-F-frames, actions) window of ground-truth trajectories.

    trajectories: {"frames": uint8 [n, L+1, H, W], "actions": int64 [n, L] or float [n, L, D]}.
    Returns {"context": [M, C, H, W], "target": [M, F, H, W] (model space), "actions": [M, F(, D)]}.
    """
    frames = frames_to_model(trajectories["frames"])
    actions = torch.as_tensor(np.asarray(trajectories["actions"]))
    if frames.dim() != 4 or actions.shape[:2] != (frames.shape[0], frames.shape[1] - 1):
        raise ValueError(f"{_WHERE}: trajectories need frames [n, L+1, H, W] and actions [n, L], got "
                         f"{list(frames.shape)} and {list(actions.shape)}")
    contexts, targets, chunks = [], [], []
    for t in range(context_frames - 1, frames.shape[1] - num_frames):
        contexts.append(frames[:, t - context_frames + 1 : t + 1])
        targets.append(frames[:, t + 1 : t + 1 + num_frames])
        chunks.append(actions[:, t : t + num_frames])
    if not contexts:
        raise ValueError(f"{_WHERE}: trajectories of {frames.shape[1]} frames are too short for "
                         f"{context_frames} context + {num_frames} generated frames")
    return {"context": torch.cat(contexts), "target": torch.cat(targets), "actions": torch.cat(chunks)}


def pretrain_frame_model(model: ActionConditionedFrameModel, trajectories: dict, *, steps: int, lr: float = 1e-3,
                         seed: int = 0, batch_size: int = 64, progress: str | None = None,
                         on_step: Callable[[int, ActionConditionedFrameModel], None] | None = None) -> list[float]:
    """Flow-matching SFT on ground-truth windows (`trajectory_chunks`) with AdamW; returns the loss per step.
    `progress`: a tqdm bar with this description (None: no bar). `on_step(k, model)` is called after optimizer step
    k (1-based), e.g. to keep snapshots: the learning rate is constant, so step k of a longer run is the k-step model.

    This is the world model's pre-training inside the toolkit (RLIR starts from an SFT world model).
    """
    data = trajectory_chunks(trajectories, num_frames=model.config.num_frames, context_frames=model.config.context_frames)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=progress, unit="step")
    for step in range(1, steps + 1):
        index = torch.randint(len(data["target"]), (min(batch_size, len(data["target"])),), generator=generator)
        loss = flow_matching_loss(model, data["target"][index], {"context": data["context"][index],
                                                                  "actions": data["actions"][index]}, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, model)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    if bar is not None:
        bar.close()
    model.eval()
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError(f"{_WHERE}: flow-matching pre-training diverged (non-finite loss)")
    return losses
