"""Success rates of acting policies in environments (LIBERO-style VLA evaluation).

The de-facto LIBERO protocol (openvla `experiments/robot/libero/run_libero_eval.py`): per task, N
trials, trial i starting from the i-th fixed initial state; a few "settle" steps with a no-op action
first (objects fall into place; not counted against the step limit); then up to `max_steps` policy
actions; an episode succeeds when the environment reports the goal reached; an exception ends the
episode as a failure. Success rate = successes / episodes, per task and overall, reported here with
a Wilson score interval.

Environments follow the gymnasium API: `reset(seed=..., options=...) -> (obs, info)` and
`step(action) -> (obs, reward, terminated, truncated, info)`. Success is `info["success"]` when the
environment reports it, else `terminated` (LIBERO's `done` means every goal predicate holds).
"""
from __future__ import annotations

import math
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable


@runtime_checkable
class Env(Protocol):
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]: ...

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]: ...


Policy = Callable[[Any], Any]
"""obs -> action. An object with a `reset()` method is reset before every episode."""


@dataclass
class EpisodeResult:
    task: str
    episode: int
    seed: int
    success: bool
    steps: int
    total_reward: float
    error: str | None = None


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927), 95 % by default.

    centre = (p + z^2 / 2n) / (1 + z^2 / n),  half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n).
    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at p = 0 or 1.
    """
    if trials <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes ({successes}) must lie in [0, trials={trials}]")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_episode(env: Env, policy: Policy, *, task: str, episode: int, seed: int, max_steps: int,
                settle_steps: int = 0, settle_action: Any = None, initial_state: Any = None) -> EpisodeResult:
    """One episode: reset (seeded, optionally to a stored initial state), settle, then act until the
    environment terminates or truncates, or `max_steps` policy actions were taken."""
    steps, total_reward = 0, 0.0
    try:
        if hasattr(policy, "reset"):
            policy.reset()
        options = {"initial_state": initial_state} if initial_state is not None else None
        observation, info = env.reset(seed=seed, options=options)
        for _ in range(settle_steps):
            observation, _, terminated, truncated, info = env.step(settle_action)
            if terminated or truncated:
                return EpisodeResult(task, episode, seed, _succeeded(terminated, info), 0, 0.0)
        while steps < max_steps:
            observation, reward, terminated, truncated, info = env.step(policy(observation))
            steps += 1
            total_reward += float(reward)
            if terminated or truncated:
                return EpisodeResult(task, episode, seed, _succeeded(terminated, info), steps, total_reward)
        return EpisodeResult(task, episode, seed, False, steps, total_reward)
    except Exception as error:  # a crashing rollout is a failed episode, recorded with its cause
        message = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"
        return EpisodeResult(task, episode, seed, False, steps, total_reward, error=message)


def _succeeded(terminated: bool, info: dict) -> bool:
    if isinstance(info, dict) and "success" in info:
        return bool(info["success"])
    return bool(terminated)


def _rate(results: Sequence[EpisodeResult]) -> dict:
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    return {"success_rate": successes / len(results) if results else 0.0, "successes": successes,
            "episodes": len(results), "ci95": [low, high], "errors": sum(r.error is not None for r in results)}


def evaluate_policy(
    make_env: Callable[[str], Env],
    policy: Policy | Callable[[str], Policy],
    *,
    tasks: Sequence[str] = ("default",),
    episodes_per_task: int,
    max_steps: int | dict[str, int],
    seed: int = 7,
    settle_steps: int = 0,
    settle_action: Any = None,
    initial_states: dict[str, Sequence[Any]] | None = None,
    policy_per_task: bool = False,
) -> dict:
    """Success rate of `policy` over `episodes_per_task` episodes of each task.

    Args:
        make_env: task name -> environment (built once per task, reset every episode).
        policy: obs -> action; with `policy_per_task`, a factory task name -> policy (e.g. to give a
            VLA the task's language instruction).
        max_steps: policy steps per episode, one number or {task: steps} (LIBERO: spatial 220,
            object 280, goal 300, libero_10 520, libero_90 400).
        seed: episode i of a task is reset with seed + i, so every run sees the same initial states.
        settle_steps, settle_action: steps of `settle_action` after reset (LIBERO: 10 no-ops).
        initial_states: {task: [state, ...]}; episode i passes the i-th state as
            `options={"initial_state": ...}` to `reset` (LIBERO's stored `.pruned_init` states).
    Returns {"success_rate", "successes", "episodes", "ci95", "errors", "per_task": {task: same},
    "episode_results": [...]}.
    """
    if episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be at least 1, got {episodes_per_task}")
    results: list[EpisodeResult] = []
    per_task: dict[str, dict] = {}
    for task in tasks:
        limit = max_steps[task] if isinstance(max_steps, dict) else max_steps
        states = (initial_states or {}).get(task)
        if states is not None and len(states) < episodes_per_task:
            raise ValueError(f"task {task}: {len(states)} initial states for {episodes_per_task} episodes")
        env = make_env(task)
        acting = policy(task) if policy_per_task else policy
        task_results = [
            run_episode(env, acting, task=task, episode=i, seed=seed + i, max_steps=limit, settle_steps=settle_steps,
                        settle_action=settle_action, initial_state=states[i] if states is not None else None)
            for i in range(episodes_per_task)
        ]
        per_task[task] = _rate(task_results)
        results.extend(task_results)
        close = getattr(env, "close", None)
        if callable(close):
            close()
    return {**_rate(results), "per_task": per_task, "episode_results": [asdict(r) for r in results]}
