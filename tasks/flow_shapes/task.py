"""`flow_grpo_shapes`: a class-conditioned image generator is rewarded for a bright blob in its class's quadrant.

The Flow-GRPO test bed at CPU size (Liu et al. 2025 use PickScore / GenEval / OCR rewards on SD3.5; here the
reward is analytic so its values can be checked by hand). Class c in 0..3 names a quadrant of the 16 x 16 image
(0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right). Generated images arrive as tensors [C, H, W] in the
sampler's output range [-1, 1] and are read in [0, 1]:

- `flow_shapes_contrast` (the training reward): mean intensity inside the class's quadrant minus the mean over the
  other three quadrants, in [-1, 1];
- `flow_shapes_hit` (the accuracy reward): 1.0 if the class's quadrant is the brightest of the four.

`evaluate_policy` scores held-out prompts with the deterministic ODE sampler from fixed start noise (seed per row),
so before/after numbers compare the same draws.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from mmpost.modalities.generation.processing import to_unit_range
from mmpost.registry import REWARDS, TASKS
from mmpost.types import DataError, Message, Sample

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
NUM_CLASSES = len(QUADRANTS)
EVAL_SEED = 1234


def _label(sample: Sample) -> int:
    label = sample.get("label")
    if not isinstance(label, int) or not 0 <= label < NUM_CLASSES:
        raise DataError(f"sample {sample.get('id', '?')!r}: 'label' must be an int in 0..{NUM_CLASSES - 1}, got {label!r}")
    return label


def quadrant_means(image: torch.Tensor) -> torch.Tensor:
    """[C, H, W] (or [H, W]) in [0, 1] -> mean intensity of the four quadrants [4] (order of QUADRANTS)."""
    pixels = image.float().reshape(-1, *image.shape[-2:]).mean(0)
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    return torch.stack([pixels[:h, :w].mean(), pixels[:h, w:].mean(), pixels[h:, :w].mean(), pixels[h:, w:].mean()])


def quadrant_contrast(image: torch.Tensor, label: int) -> float:
    """Mean inside quadrant `label` minus the mean of the other three (equal-size quadrants), image in [0, 1]."""
    means = quadrant_means(image)
    others = torch.cat([means[:label], means[label + 1 :]])
    return float(means[label] - others.mean())


@REWARDS.register("flow_shapes_contrast")
def flow_shapes_contrast(completions: Sequence[torch.Tensor], samples: Sequence[Sample], *, low: float = -1.0,
                         high: float = 1.0) -> list[float]:
    """Inside-minus-outside intensity of each generated image (range [low, high] mapped to [0, 1]); in [-1, 1]."""
    return [quadrant_contrast(to_unit_range(torch.as_tensor(c), low, high), _label(s)) for c, s in zip(completions, samples)]


@REWARDS.register("flow_shapes_hit")
def flow_shapes_hit(completions: Sequence[torch.Tensor], samples: Sequence[Sample], *, low: float = -1.0,
                    high: float = 1.0) -> list[float]:
    """1.0 if the class's quadrant is the brightest of the four, else 0.0."""
    return [float(int(quadrant_means(to_unit_range(torch.as_tensor(c), low, high)).argmax()) == _label(s))
            for c, s in zip(completions, samples)]


@TASKS.register("flow_grpo_shapes")
class FlowShapesTask:
    """Prompts are the four quadrant classes, repeated; train and held-out rows differ only in id (and so in the
    sampler's start noise), as in Flow-GRPO's prompt-only datasets."""

    name = "flow_grpo_shapes"
    modality = "generation"
    accuracy_reward = "flow_shapes_hit"

    def __init__(self, *, train_size: int = 64, heldout_size: int = 32) -> None:
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [{"name": "flow_shapes_contrast", "weight": 1.0}, {"name": "flow_shapes_hit", "weight": 0.0}]

    def load(self, split: str, *, size: int | None = None, **_: Any) -> list[Sample]:
        key = {"train": "train", "heldout": "heldout", "test": "heldout", "validation": "heldout"}.get(split)
        if key is None:
            raise DataError(f"flow_grpo_shapes: unknown split {split!r}; expected train or heldout")
        count = size if size is not None else self.sizes[key]
        return [{"id": f"{key}-{i}", "label": i % NUM_CLASSES, "conditioning": {"class_labels": i % NUM_CLASSES},
                 "problem": f"a bright square in the {QUADRANTS[i % NUM_CLASSES]} quadrant"} for i in range(count)]

    def conditioning(self, sample: Sample) -> dict[str, torch.Tensor]:
        return {"class_labels": torch.tensor(_label(sample))}

    def prompt(self, sample: Sample) -> list[Message]:
        return [{"role": "user", "content": [{"type": "text", "text": sample["problem"]}]}]

    def target(self, sample: Sample) -> str:
        raise NotImplementedError("flow_grpo_shapes has no text targets; the generator is pre-trained by flow matching "
                                  "(zoo tiny-flow-generator-shapes)")

    def evaluate_policy(self, policy: Any, backend: Any, rows: list[dict], *, rank: int = 0, world: int = 1
                        ) -> tuple[float, float]:
        """Sum and count of `flow_shapes_hit` over `rows`, ODE-sampled from fixed start noise."""
        from mmpost.denoising import fixed_noise_scores

        return fixed_noise_scores(policy, backend, rows, flow_shapes_hit, seed=EVAL_SEED)

