"""Experience from environment episodes: the `env_rollouts` source and the `episode_return` reward.

Per step, each of the step's samples is an initial state; G = `rollout.num_generations` environments are reset
from the SAME initial state (one GRPO group, as RLinf repeats `reset_state_ids` per group). The policy acts
through the rollout backend on observation prompts the task builds (`task.observation_sample`), the task turns
each completion into an action chunk (`task.action_chunk`), and the environment steps the chunk. Every policy
call is one row: its observation becomes a new prompt/sample of the batch, its episode id groups the rows of one
episode (the trainer computes one advantage per episode and broadcasts it), and the episode's return is stored in
the row's sample (`_episode_return`), where the `episode_return` reward reads it.

The task supplies three functions:
- `initial_state(sample) -> state` for `env.reset` (for a world model: the initial frames);
- `observation_sample(sample, observation, call) -> Sample` (a prompt-ready sample for one observation);
- `action_chunk(output, sample) -> array [C, A]` (output = the decoded completion, or the backend's `outputs`);
and optionally `episode_truth(sample, action_chunks, steps) -> bool`: whether the episode's first `steps` actions,
replayed from its initial state in the ground truth, reach success. With it, episodes in a learned environment (a world model judged by a
reflector) are checked against the truth every step: `diag/true_success_rate` and `diag/success_call_agreement`
(how often the environment's success verdict matches the truth) -- the learned reward against the truth.

Which environment: `algorithm.source_args.env` names an ENVIRONMENTS entry, called with `env_args` (plus the
task as `task=` when the entry accepts it); the task's own entries switch between a world model and the ground
truth (direct RL).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch

from mmpost.envs.base import EpisodeStats
from mmpost.experience import BatchBuilder, ExperienceSource, RowKind, StepContext, completion_mask, pad_completions
from mmpost.registry import ENVIRONMENTS, EXPERIENCE_SOURCES, REWARDS
from mmpost.rollout.base import SamplingParams
from mmpost.types import DataError, PromptEncoding, Sample

EPISODE_RETURN = "_episode_return"
EPISODE_SUCCESS = "_episode_success"


@dataclass
class PolicyCall:
    """One observation the policy acted on: its sample and prompt, the sampled tokens and their log-probs, and the
    action chunk the task made of them."""

    sample: Sample
    prompt: PromptEncoding
    completion_ids: list[int]
    logprobs: list[float] | None
    actions: np.ndarray | None = None


@dataclass
class Episode:
    """One episode: which initial sample it started from, the policy's calls, and how it ended."""

    initial_index: int
    calls: list[PolicyCall] = field(default_factory=list)
    stats: EpisodeStats | None = None


def build_environment(name: str, env_args: dict | None, task: Any = None) -> Any:
    """An ENVIRONMENTS entry called with `env_args` (and `task=` when it accepts one)."""
    factory = ENVIRONMENTS.get(name)
    args = dict(env_args or {})
    try:
        accepts_task = "task" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepts_task = False
    if accepts_task and "task" not in args:
        args["task"] = task
    return factory(**args)


def _task_function(task: Any, name: str):
    function = getattr(task, name, None)
    if not callable(function):
        raise TypeError(f"task '{getattr(task, 'name', type(task).__name__)}' lacks `{name}`, which environment "
                        "rollouts need (see mmpost/envs/source.py)")
    return function


def _accepts(function: Any, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _outputs(policy: Any, result: Any) -> list[Any]:
    """What the task turns into actions: the backend's decoded outputs, else the policy's decoding of the ids."""
    if result.outputs is not None:
        return list(result.outputs)
    ids = pad_completions(result.completion_ids, policy.pad_token_id)
    lengths = torch.tensor([len(c) for c in result.completion_ids])
    mask = completion_mask(ids, policy.eos_token_ids) * (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float()
    return policy.decode(ids, mask)


def run_episodes(policy: Any, backend: Any, env: Any, samples: Sequence[Sample], sampling: SamplingParams, *,
                 group_size: int, max_policy_calls: int, seed: int | None = None) -> list[Episode]:
    """Run len(samples) * group_size episodes (episode b starts from samples[b // group_size]) for at most
    `max_policy_calls` chunks each; an episode still running then ends truncated (success False)."""
    task = policy.task
    initial_state, observation_sample = _task_function(task, "initial_state"), _task_function(task, "observation_sample")
    action_chunk = _task_function(task, "action_chunk")
    count = len(samples) * group_size
    episodes = [Episode(b // group_size) for b in range(count)]
    observations = env.reset([initial_state(samples[b // group_size]) for b in range(count)], seed=seed)
    returns, lengths = [0.0] * count, [0] * count
    active = list(range(count))
    steps_subset = _accepts(env.chunk_step, "active")
    params = replace(sampling, n=1)
    for call in range(max_policy_calls):
        if not active:
            break
        call_samples = [observation_sample(samples[b // group_size], observations[b], call) for b in active]
        prompts = policy.encode_prompts(call_samples)
        result = backend.generate(prompts, call_samples, params)
        chunks = [np.asarray(action_chunk(output, sample), dtype=np.float32)
                  for output, sample in zip(_outputs(policy, result), call_samples)]
        if any(c.shape != chunks[0].shape or c.ndim < 1 or c.shape[0] != env.chunk for c in chunks):
            raise ValueError(f"task.action_chunk must return [{env.chunk}, ...] arrays of one shape; got "
                             f"{sorted({c.shape for c in chunks})}")
        actions = np.zeros((count, *chunks[0].shape), dtype=np.float32)  # ended episodes' envs step zeros, unread
        for k, b in enumerate(active):
            actions[b] = chunks[k]
            logprobs = result.logprobs[k] if result.logprobs else None
            episodes[b].calls.append(PolicyCall(call_samples[k], prompts[k], list(result.completion_ids[k]), logprobs,
                                                chunks[k]))
        # an env that can step a subset skips the episodes that already ended (their results are never read)
        step = env.chunk_step(actions, active=active) if steps_subset else env.chunk_step(actions)
        done = step.done
        for b in active:
            returns[b] += float(step.rewards[b].sum())
            lengths[b] += int(step.rewards.shape[1]) if not done[b] else int(
                torch.nonzero(step.terminated[b] | step.truncated[b])[0, 0]) + 1
            if done[b]:
                episodes[b].stats = step.infos[b].get("episode") or EpisodeStats(returns[b], lengths[b], False)
        active = [b for b in active if not done[b]]
        observations = step.observations
    for b in active:
        episodes[b].stats = EpisodeStats(returns[b], lengths[b], False)
    return episodes


def truth_metrics(task: Any, samples: Sequence[Sample], episodes: Sequence[Episode]) -> dict[str, float]:
    """The environment's success verdicts against the ground truth (`task.episode_truth`, see the module docstring);
    {} when the task has no ground truth to replay in. Only the steps the episode took count: actions after an
    ended episode were never executed."""
    truth = getattr(task, "episode_truth", None)
    if not callable(truth) or not episodes:
        return {}
    true = [bool(truth(samples[e.initial_index], [c.actions for c in e.calls], e.stats.length)) for e in episodes]
    claimed = [bool(e.stats.success) for e in episodes]
    return {"diag/true_success_rate": float(np.mean(true)),
            "diag/success_call_agreement": float(np.mean([a == b for a, b in zip(true, claimed)]))}


def episode_metrics(episodes: Sequence[Episode], prefix: str = "env") -> dict[str, float]:
    if not episodes:
        return {}
    stats = [e.stats for e in episodes]
    return {f"{prefix}/success_rate": float(np.mean([s.success for s in stats])),
            f"{prefix}/episode_return": float(np.mean([s.episode_return for s in stats])),
            f"{prefix}/episode_length": float(np.mean([s.length for s in stats])),
            f"{prefix}/policy_calls": float(np.mean([len(e.calls) for e in episodes])),
            f"{prefix}/episodes": float(len(episodes))}


@EXPERIENCE_SOURCES.register("env_rollouts")
class EnvRollouts(ExperienceSource):
    """GRPO over environment episodes: G episodes per initial state, one row per policy call.

    Options: `env` (an ENVIRONMENTS name) and `env_args`, `max_policy_calls` (chunks per episode at most),
    `seed` (the environments' reset seed, offset by the step)."""

    def __init__(self, env: str, env_args: dict | None = None, max_policy_calls: int = 8, seed: int = 0) -> None:
        if max_policy_calls < 1:
            raise ValueError(f"env_rollouts: max_policy_calls must be >= 1, got {max_policy_calls}")
        self.env_name, self.env_args = env, dict(env_args or {})
        self.max_policy_calls, self.seed = max_policy_calls, seed
        self._env: Any = None
        self.last_episodes: list[Episode] = []
        self.last_samples: list[Sample] = []

    def environment(self, ctx: StepContext) -> Any:
        if self._env is None:
            self._env = build_environment(self.env_name, self.env_args, ctx.policy.task)
        return self._env

    def collect(self, ctx: StepContext, samples: list[Sample], prompts: list[PromptEncoding]):
        episodes = run_episodes(ctx.policy, ctx.backend, self.environment(ctx), samples, ctx.sampling,
                                group_size=ctx.sampling.n, max_policy_calls=self.max_policy_calls,
                                seed=self.seed * 100003 + ctx.step)
        builder = BatchBuilder(list(samples), list(prompts))
        for episode_id, episode in enumerate(episodes):
            for call in episode.calls:
                builder.samples.append({**call.sample, EPISODE_RETURN: episode.stats.episode_return,
                                        EPISODE_SUCCESS: float(episode.stats.success)})
                builder.prompts.append(call.prompt)
                builder.add_row(len(builder.samples) - 1, episode.initial_index, call.completion_ids, source=RowKind.POLICY,
                                is_sft=False, sampling_logprobs=call.logprobs, episode_id=episode_id)
        self.last_episodes, self.last_samples = episodes, list(samples)
        return builder.build(ctx)

    def after_rewards(self, ctx: StepContext, batch):
        return batch, {**episode_metrics(self.last_episodes), **truth_metrics(ctx.policy.task, self.last_samples, self.last_episodes)}


def _episode_field(samples: Sequence[Sample], key: str, reward: str) -> list[float]:
    values = []
    for sample in samples:
        if key not in sample:
            raise DataError(f"sample {sample.get('id', '?')!r}: reward '{reward}' needs '{key}', which the env_rollouts "
                            "source writes; use it with algorithm.source=env_rollouts")
        values.append(float(sample[key]))
    return values


@REWARDS.register("episode_return")
def episode_return(completions: Sequence[Any], samples: Sequence[Sample]) -> list[float]:
    """The return of the episode the row belongs to (every row of an episode gets the same value)."""
    return _episode_field(samples, EPISODE_RETURN, "episode_return")


@REWARDS.register("episode_success")
def episode_success(completions: Sequence[Any], samples: Sequence[Sample]) -> list[float]:
    """1.0 if the row's episode ended in success (the environment's verdict), else 0.0."""
    return _episode_field(samples, EPISODE_SUCCESS, "episode_success")
