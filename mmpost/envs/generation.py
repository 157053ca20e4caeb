"""A one-step environment for generators (RLinf's diffusion `GenerationEnv`): context + conditioning in, media
out, reward on the output.

`reset(initial_states)` returns the states themselves as observations (what the generator is conditioned on:
prompts, context frames, action sequences). `chunk_step(actions)` takes one "action" per episode (C = 1): the
generator's output or what `generate_fn` turns into it (e.g. a seed or latent), scores the outputs with
`reward_fn`, and ends every episode (terminated) after that single step, auto-resetting it.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from mmpost.envs.base import EpisodeStats, StepResult
from mmpost.registry import ENVIRONMENTS


@ENVIRONMENTS.register("generation")
class GenerationEnv:
    """`generate_fn(initial_states, actions) -> outputs` (default: the actions are the outputs);
    `reward_fn(outputs, initial_states) -> [B] rewards`; `success_threshold` marks an output a success."""

    chunk = 1

    def __init__(self, generate_fn: Callable[[Sequence[Any], Sequence[Any]], Sequence[Any]] | None,
                 reward_fn: Callable[[Sequence[Any], Sequence[Any]], Any], *, success_threshold: float | None = None) -> None:
        self.generate_fn, self.reward_fn, self.success_threshold = generate_fn, reward_fn, success_threshold
        self._states: list[Any] = []

    def reset(self, initial_states: Sequence[Any], *, seed: int | None = None) -> list[Any]:
        if not initial_states:
            raise ValueError("GenerationEnv.reset: no initial states")
        self._states = list(initial_states)
        return list(self._states)

    def chunk_step(self, action_chunks: Sequence[Any]) -> StepResult:
        """`action_chunks`: B items, each a one-step chunk (a sequence of length 1, e.g. a [1, ...] tensor)."""
        batch = len(self._states)
        if not batch:
            raise RuntimeError("GenerationEnv.chunk_step before reset")
        if len(action_chunks) != batch or any(len(chunk) != 1 for chunk in action_chunks):
            raise ValueError(f"GenerationEnv.chunk_step: expected {batch} one-step chunks (C = 1), got "
                             f"{[len(c) for c in action_chunks] if len(action_chunks) < 20 else len(action_chunks)}")
        actions = [chunk[0] for chunk in action_chunks]
        outputs = list(self.generate_fn(self._states, actions)) if self.generate_fn else actions
        rewards = torch.as_tensor(self.reward_fn(outputs, self._states), dtype=torch.float32).reshape(-1)
        if rewards.numel() != batch:
            raise ValueError(f"GenerationEnv: reward_fn returned {rewards.numel()} rewards for {batch} outputs")
        infos = []
        for b in range(batch):
            value = float(rewards[b])
            success = self.success_threshold is not None and value >= self.success_threshold
            infos.append({"output": outputs[b], "final_observation": outputs[b],
                          "episode": EpisodeStats(value, 1, success, value)})
        return StepResult(list(self._states), rewards[:, None], torch.ones(batch, 1, dtype=torch.bool),
                          torch.zeros(batch, 1, dtype=torch.bool), infos)
