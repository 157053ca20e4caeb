"""Any gymnasium environment as a batched, chunked `Env`: one instance per episode, stepped in-process.

Give a list of `gymnasium.Env` instances, a `gymnasium.vector.SyncVectorEnv` (its sub-environments are used, so
the vector env's own auto-reset mode does not apply), or an id for `gymnasium.make` (instances are made as
`reset` needs them). An initial state reaches an instance as `reset(seed=..., options={"initial_state": s})`
(None: the env's own random start). Episode success is read from `info["success"]` or `info["is_success"]`,
the score from `info["score"]`. Auto-reset as `mmpost.envs.base` documents.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from mmpost.envs.base import EpisodeStats, StepResult, check_action_chunks
from mmpost.registry import ENVIRONMENTS


def _success(info: dict[str, Any]) -> bool:
    return bool(info.get("success", info.get("is_success", False)))


@ENVIRONMENTS.register("gym")
class GymEnv:
    """Observations are whatever the gymnasium env returns; `max_steps` truncates on top of the env's own limit."""

    def __init__(self, envs: Any = None, *, env_id: str | None = None, env_kwargs: dict | None = None, chunk: int = 1,
                 max_steps: int | None = None) -> None:
        if (envs is None) == (env_id is None):
            raise ValueError("GymEnv: give exactly one of `envs` (instances or a SyncVectorEnv) and `env_id`")
        if chunk < 1:
            raise ValueError(f"GymEnv: chunk must be >= 1, got {chunk}")
        sub_envs = getattr(envs, "envs", None)  # a SyncVectorEnv
        self._envs: list[Any] = list(sub_envs if sub_envs is not None else envs or [])
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.chunk, self.max_steps = chunk, max_steps
        self._states: list[Any] = []

    def _instances(self, count: int) -> list[Any]:
        if self.env_id is not None:
            import gymnasium

            while len(self._envs) < count:
                self._envs.append(gymnasium.make(self.env_id, **self.env_kwargs))
        if len(self._envs) < count:
            raise ValueError(f"GymEnv: {count} initial states but only {len(self._envs)} environment instances")
        return self._envs[:count]

    def reset(self, initial_states: Sequence[Any], *, seed: int | None = None) -> list[Any]:
        """Reset instance b from `initial_states[b]`, seeded `seed + b` (None: unseeded)."""
        if not initial_states:
            raise ValueError("GymEnv.reset: no initial states")
        self._states = list(initial_states)
        self._active = self._instances(len(self._states))
        self._seed = seed
        self._steps = [0] * len(self._states)
        self._return = [0.0] * len(self._states)
        return [self._reset_one(b, first=True) for b in range(len(self._states))]

    def _reset_one(self, b: int, first: bool = False) -> Any:
        options = None if self._states[b] is None else {"initial_state": self._states[b]}
        seed = None if self._seed is None or not first else self._seed + b
        observation, _ = self._active[b].reset(seed=seed, options=options)
        self._steps[b], self._return[b] = 0, 0.0
        return observation

    def chunk_step(self, action_chunks: Any) -> StepResult:
        batch = len(self._states)
        if not batch:
            raise RuntimeError("GymEnv.chunk_step before reset")
        actions = check_action_chunks(action_chunks, batch, self.chunk, "GymEnv.chunk_step").numpy()
        rewards = torch.zeros(batch, self.chunk)
        terminated = torch.zeros(batch, self.chunk, dtype=torch.bool)
        truncated = torch.zeros(batch, self.chunk, dtype=torch.bool)
        observations: list[Any] = [None] * batch
        infos: list[dict[str, Any]] = [{} for _ in range(batch)]
        for b, env in enumerate(self._active):
            for c in range(self.chunk):
                action = actions[b, c]
                if getattr(env.action_space, "dtype", None) is not None and np.issubdtype(env.action_space.dtype, np.integer):
                    action = action.astype(env.action_space.dtype).reshape(env.action_space.shape or ())
                observation, reward, term, trunc, info = env.step(action)
                self._steps[b] += 1
                self._return[b] += float(reward)
                rewards[b, c] = float(reward)
                terminated[b, c] = bool(term)
                truncated[b, c] = bool(trunc) or (not term and self.max_steps is not None and self._steps[b] >= self.max_steps)
                observations[b] = observation
                if terminated[b, c] or truncated[b, c]:
                    infos[b] = {"final_observation": observation, "final_info": info,
                                "episode": EpisodeStats(self._return[b], self._steps[b], _success(info),
                                                        float(info.get("score", float("nan"))))}
                    observations[b] = self._reset_one(b)
                    break
        return StepResult(observations, rewards, terminated, truncated, infos)
