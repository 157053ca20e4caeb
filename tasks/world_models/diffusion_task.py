"""Task "rlir_diffusion": RLIR with a flow-matching world model trained as a denoising policy (Flow-GRPO).

The policy is the world model `ActionConditionedFrameModel` (diffusion_wm.py). A sample's conditioning is the
context frame(s) of a ground-truth DotGrid trajectory plus its next F actions; the model generates the next F
frames in one denoising chain; rewards (diffusion_rewards.py) run the IDM over the generated frames.
Splits are disjoint by trajectory hash (gridworld.py): the world model pre-trains on "world_model", the reward IDM
on "idm", the gold IDM on "idm_gold", RL conditioning comes from "rl" and held-out conditioning from "heldout".
Zoo "tiny-diffusion-world-model-sft" is the flow-matching pre-trained (deliberately under-trained) start point.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mmpost.registry import MODEL_ZOO, TASKS
from mmpost.tasks.world_models.diffusion_rewards import idm_exact_frames
from mmpost.tasks.world_models.diffusion_wm import ActionConditionedFrameModel, frames_to_model, pretrain_frame_model
from mmpost.tasks.world_models.gridworld import ACTION_NAMES, SPLITS, collect_trajectories, conditioning_samples
from mmpost.types import DataError, Message, Sample

EVAL_SEED = 1234
SFT_TRAJECTORIES = 256
SFT_LENGTH = 8


@TASKS.register("rlir_diffusion")
class RlirDiffusionTask:
    """Options: `frames` (F generated jointly; must match the world model), `context` (C context frames),
    `train_split`, sizes, `seed`."""

    name = "rlir_diffusion"
    modality = "generation"
    accuracy_reward = "idm_exact_frames"

    def __init__(self, *, seed: int = 0, frames: int = 1, context: int = 1, train_split: str = "rl",
                 train_size: int = 256, heldout_size: int = 64) -> None:
        if frames < 1 or context < 1:
            raise ValueError(f"rlir_diffusion: frames and context must be >= 1, got frames={frames}, context={context}")
        if train_split not in SPLITS:
            raise ValueError(f"rlir_diffusion: train_split {train_split!r} is not one of {list(SPLITS)}")
        self.seed, self.frames, self.context, self.train_split = seed, frames, context, train_split
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [
            {"name": "idm_exact_frames", "weight": 1.0},
            {"name": "idm_soft_frames", "weight": 0.0},
            {"name": "idm_gold_exact_frames", "weight": 0.0},
            {"name": "pixel_mae_frames", "weight": 0.0},
        ]

    def load(self, split: str, *, size: int | None = None, **_: Any) -> list[Sample]:
        samples = conditioning_samples(self.name, split, train_split=self.train_split, sizes=self.sizes,
                                       context=self.context, frames=self.frames, seed=self.seed, size=size)
        for sample in samples:
            sample["problem"] = "after " + ", ".join(ACTION_NAMES[int(a)] for a in sample["actions"])
        return samples

    def conditioning(self, sample: Sample) -> dict[str, torch.Tensor]:
        """{"context": float [C, H, W] in [-1, 1], "actions": long [F]} for ActionConditionedFrameModel."""
        if sample.get("context_frames") is None or sample.get("actions") is None:
            raise DataError(f"sample {sample.get('id', '?')!r}: rlir_diffusion needs 'context_frames' and 'actions'")
        actions = torch.as_tensor(sample["actions"], dtype=torch.long).reshape(-1)
        if actions.numel() != self.frames:
            raise DataError(f"sample {sample.get('id', '?')!r}: {actions.numel()} actions for a {self.frames}-frame task")
        return {"context": frames_to_model(sample["context_frames"]), "actions": actions}

    def prompt(self, sample: Sample) -> list[Message]:
        return [{"role": "user", "content": [{"type": "text", "text": sample["problem"]}]}]

    def target(self, sample: Sample) -> str:
        raise NotImplementedError("rlir_diffusion has no text targets; the world model pre-trains by flow matching "
                                  "(zoo tiny-diffusion-world-model-sft)")

    def evaluate_policy(self, policy: Any, backend: Any, rows: list[dict], *, rank: int = 0, world: int = 1
                        ) -> tuple[float, float]:
        """IDM exact-match accuracy of ODE samples from fixed start noise on held-out conditioning."""
        from mmpost.denoising import fixed_noise_scores

        return fixed_noise_scores(policy, backend, rows, idm_exact_frames, seed=EVAL_SEED)


@MODEL_ZOO.register("tiny-diffusion-world-model-sft")
def build_diffusion_world_model_sft(out_dir: str | os.PathLike, *, seed: int = 0, frames: int = 1, steps: int = 80,
                                    lr: float = 2e-3, num_steps: int = 8, noise_level: float = 0.7,
                                    action_encoder: str = "embedding") -> Path:
    """ActionConditionedFrameModel (F = `frames`, 1 context frame) flow-matching pre-trained for `steps` steps on
    the "world_model" split (deliberately under-trained, as RLIR's starting point); saved as a generator folder.

    80 steps with the class-embedding action encoder: held-out ODE IDM accuracy ~0.48, and the frames already
    depend on the action (`forced_action_accuracy` ~0.46 vs ~0.22 for an action-blind model), which RL needs."""
    # Seeded initialisation without disturbing the caller's RNG (a training run's resume depends on it).
    with torch.random.fork_rng():
        from mmpost.denoising import save_generator

        torch.manual_seed(seed)
        model = ActionConditionedFrameModel(num_frames=frames, context_frames=1, action_encoder=action_encoder)
        data = collect_trajectories(SFT_TRAJECTORIES, SFT_LENGTH, seed=seed, split="world_model")
        pretrain_frame_model(model, data, steps=steps, lr=lr, seed=seed)
        size = model.config.frame_size
        sampler = {"latent_shape": [frames, size, size], "num_steps": num_steps, "noise_level": noise_level,
                   # The last step (σ ≈ 0.001 -> 0) is not trained, as the official timestep_fraction 0.99 leaves it out.
               "train_steps": f"first:{num_steps - 1}" if num_steps > 1 else "all", "sde_steps": "all",
               "output_range": [-1.0, 1.0]}
        return save_generator(model, Path(out_dir), sampler=sampler)
