"""Zoo "tiny-flow-generator-shapes": the tiny flow generator briefly pre-trained by flow matching, so RL starts from
images that are blobs rather than noise, but only half of them in the right quadrant.

Pre-training images: a bright square (value 1) on a dark background (-1), anywhere inside one quadrant. For class c
the square lies in quadrant c with probability `match_probability`, otherwise in another quadrant: the class is
informative but weakly followed, which Flow-GRPO's reward then sharpens.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from mmpost.registry import MODEL_ZOO

from .task import NUM_CLASSES

SQUARE = 4


def blob_images(labels: torch.Tensor, *, match_probability: float, generator: torch.Generator, size: int = 16
                ) -> torch.Tensor:
    """[B] class labels -> [B, 1, size, size] images in {-1, 1} with a SQUARE x SQUARE blob in a drawn quadrant."""
    batch = labels.shape[0]
    other = (labels + torch.randint(1, NUM_CLASSES, (batch,), generator=generator)) % NUM_CLASSES
    quadrant = torch.where(torch.rand(batch, generator=generator) < match_probability, labels, other)
    half = size // 2
    rows = torch.randint(0, half - SQUARE + 1, (batch,), generator=generator) + (quadrant // 2) * half
    cols = torch.randint(0, half - SQUARE + 1, (batch,), generator=generator) + (quadrant % 2) * half
    images = -torch.ones(batch, 1, size, size)
    for i in range(batch):
        images[i, :, rows[i] : rows[i] + SQUARE, cols[i] : cols[i] + SQUARE] = 1.0
    return images


@MODEL_ZOO.register("tiny-flow-generator-shapes")
def build_tiny_flow_generator_shapes(out_dir: str | os.PathLike, *, seed: int = 0, steps: int = 150, lr: float = 3e-3,
                                     batch_size: int = 32, match_probability: float = 0.5) -> Path:
    """`tiny-flow-generator` + `steps` flow-matching steps on blob images; saved as a generator folder."""
    # Seeded initialisation without disturbing the caller's RNG (a training run's resume depends on it).
    with torch.random.fork_rng():
        from mmpost.denoising import flow_matching_loss, save_generator
        from mmpost.modalities.generation.tiny import SAMPLER, tiny_class_conditioned_unet

        model = tiny_class_conditioned_unet(num_classes=NUM_CLASSES, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        for _ in range(steps):
            labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
            images = blob_images(labels, match_probability=match_probability, generator=generator)
            loss = flow_matching_loss(model, images, {"class_labels": labels}, generator=generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return save_generator(model.eval(), Path(out_dir), sampler=dict(SAMPLER))
