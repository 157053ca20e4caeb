"""The batched, chunked environment protocol shared by simulators, learned world models and generators.

An environment holds B parallel episodes. `reset(initial_states)` starts episode b from `initial_states[b]` (so
a GRPO group is G copies of one initial state); `chunk_step(action_chunks)` applies C actions per episode at
once (a VLA emits action chunks, RLinf's `chunk_step`) and reports per-step rewards and flags [B, C].

Auto-reset (same-step, as RLinf's world-model envs do): when episode b ends at step c of a chunk
(terminated or truncated), the actions after c are ignored (their rewards are 0 and their flags False), the
episode is reset at once to its own initial state, the returned observation is the new episode's first one,
and `infos[b]` holds `final_observation` (the last observation of the ended episode) and `episode`
(`EpisodeStats`: return, length, success, score). A caller that runs one episode per env stops reading an env
after its first `done` (see `mmpost.envs.source.run_episodes`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import torch


@dataclass
class EpisodeStats:
    """What an ended episode achieved: the sum of its rewards, its length in steps, success, last score."""

    episode_return: float
    length: int
    success: bool
    score: float = float("nan")


@dataclass
class StepResult:
    """One chunk of B episodes: observations after the chunk, rewards/flags per step [B, C], infos per episode."""

    observations: list[Any]
    rewards: torch.Tensor  # [B, C] float32
    terminated: torch.Tensor  # [B, C] bool: the task ended (success, or the env's own terminal state)
    truncated: torch.Tensor  # [B, C] bool: the step limit was reached
    infos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> torch.Tensor:
        """[B] bool: the episode ended somewhere in this chunk (and the env auto-reset)."""
        return (self.terminated | self.truncated).any(dim=1)


@runtime_checkable
class Env(Protocol):
    """A batch of episodes stepped a chunk of actions at a time (see the module docstring for auto-reset)."""

    chunk: int

    def reset(self, initial_states: Sequence[Any], *, seed: int | None = None) -> list[Any]:
        """Start len(initial_states) episodes; returns their first observations."""

    def chunk_step(self, action_chunks: Any) -> StepResult:
        """Apply action_chunks [B, C, ...] (C = `chunk`); returns rewards/terminated/truncated [B, C]."""


def check_action_chunks(action_chunks: Any, batch: int, chunk: int, where: str) -> torch.Tensor:
    """`action_chunks` as a float tensor [B, C, ...], or a ValueError naming `where` and the shape expected."""
    actions = torch.as_tensor(action_chunks, dtype=torch.float32)
    if actions.dim() < 2 or actions.shape[0] != batch or actions.shape[1] != chunk:
        raise ValueError(f"{where}: action chunks must have shape [{batch}, {chunk}, ...] (B episodes, C = chunk), "
                         f"got {list(actions.shape)}")
    return actions
