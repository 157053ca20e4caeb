"""A tiny class-conditioned pixel-space flow generator (diffusers UNet2DModel), zoo entry "tiny-flow-generator".

Randomly initialised from a config (no hub access): 16 x 16 x 1 pixels in [-1, 1], `num_classes` class labels
through the UNet's class embedding, saved as a generator folder for `model.policy: denoising`
(safetensors + config.json, scheduler/, mmpost_generator.json).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from mmpost.registry import MODEL_ZOO

IMAGE_SIZE = 16
CHANNELS = 1
# train_steps "first:K-1": as the official timestep_fraction 0.99 does, the last step (σ ≈ 0.001 -> 0, step std
# ~1e-3) is left out of the loss; its log-prob gradient would be ~1000x the others' and swamp the update.
SAMPLER = {"latent_shape": [CHANNELS, IMAGE_SIZE, IMAGE_SIZE], "num_steps": 6, "noise_level": 0.7, "train_steps": "first:5",
           "sde_steps": "all", "output_range": [-1.0, 1.0]}


def tiny_class_conditioned_unet(*, num_classes: int = 4, seed: int = 0, block_out_channels=(8, 16)):
    """UNet2DModel(16x16x1, class embedding over `num_classes`); ~40k parameters."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    levels = len(block_out_channels)
    return UNet2DModel(sample_size=IMAGE_SIZE, in_channels=CHANNELS, out_channels=CHANNELS,
                       block_out_channels=tuple(block_out_channels), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
                       num_class_embeds=num_classes, norm_num_groups=4)


@MODEL_ZOO.register("tiny-flow-generator")
def build_tiny_flow_generator(out_dir: str | os.PathLike, *, seed: int = 0, num_classes: int = 4, shift: float = 1.0,
                              **sampler) -> Path:
    """A randomly initialised tiny generator folder; `sampler` overrides entries of SAMPLER."""
    # Seeded initialisation without disturbing the caller's RNG (a training run's resume depends on it).
    with torch.random.fork_rng():
        from mmpost.denoising import save_generator

        return save_generator(tiny_class_conditioned_unet(num_classes=num_classes, seed=seed), Path(out_dir),
                              sampler={**SAMPLER, **sampler}, shift=shift)
