"""Scoring a batch with the configured rewards: named parts, weights, and errors that name the sample."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from mmpost.config import RewardSpec
from mmpost.experience import RolloutBatch
from mmpost.registry import REWARDS
from mmpost.types import Sample


class RewardError(RuntimeError):
    """A reward function raised; the message names the reward, the sample id and the exception."""


@dataclass
class BoundReward:
    name: str
    weight: float
    function: Callable
    args: dict

    def _declares(self, name: str) -> bool:
        try:
            return name in inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            return False

    @property
    def wants_groups(self) -> bool:
        """Group-aware rewards (e.g. MM-UPT's majority vote) declare a `group_ids` parameter."""
        return self._declares("group_ids")

    @property
    def wants_token_ids(self) -> bool:
        """Rewards on token ids (frame tokens, action tokens) declare a `completion_ids` parameter."""
        return self._declares("completion_ids")

    def __call__(self, completions: Sequence, samples: Sequence[Sample], group_ids: Sequence[int] | None = None,
                 completion_ids: Sequence[Sequence[int]] | None = None) -> list:
        # Only what the reward declares: a plain `fn(completions, samples, **args)` gets neither.
        declared = {"group_ids": list(group_ids)} if self.wants_groups else {}
        if self.wants_token_ids:
            declared["completion_ids"] = [list(ids) for ids in completion_ids] if completion_ids is not None else None
        return self.function(list(completions), list(samples), **self.args, **declared)


def bind_rewards(specs: Sequence[RewardSpec]) -> list[BoundReward]:
    rewards = []
    for spec in specs:
        function = REWARDS.get(spec.name)
        label = spec.name.rsplit(":", 1)[-1]
        rewards.append(BoundReward(label, float(spec.weight), function, dict(spec.args)))
    return rewards


def _values(reward: BoundReward, completions: Sequence, samples: Sequence[Sample], on_error: str,
            group_ids: Sequence[int], completion_ids: Sequence[Sequence[int]]) -> tuple[list, int]:
    try:
        values = reward(completions, samples, group_ids, completion_ids)
        _check_length(reward, values, len(completions))
        return values, 0
    except RewardError:
        raise
    except Exception as batch_error:  # noqa: BLE001 - find the row that raised, to name it
        if reward.wants_groups:  # a group-aware reward cannot be re-run row by row
            if on_error == "zero":
                return [0.0] * len(completions), len(completions)
            raise RewardError(f"reward '{reward.name}' raised on a batch of sample ids "
                              f"{sorted({str(s.get('id', '?')) for s in samples})[:8]}: {type(batch_error).__name__}: {batch_error}") from batch_error
        values, errors = [], 0
        for completion, sample, ids in zip(completions, samples, completion_ids):
            try:
                value = reward([completion], [sample], completion_ids=[ids])
                _check_length(reward, value, 1)
                values.append(value[0])
            except Exception as error:  # noqa: BLE001
                if on_error != "zero":
                    raise RewardError(
                        f"reward '{reward.name}' raised on {_sample_label(sample)}: {type(error).__name__}: {error}"
                    ) from error
                values.append(0.0)
                errors += 1
        return values, errors


def _check_length(reward: BoundReward, values, expected: int) -> None:
    if not isinstance(values, (list, tuple)) or len(values) != expected:
        raise RewardError(f"reward '{reward.name}' must return a list of {expected} values, got {values!r:.200}")


def _sample_label(sample: Sample) -> str:
    return f"sample id {sample.get('id', '?')!r} ({sample.get('_source', 'in-memory row')})"


def _as_reward_value(reward: BoundReward, value, sample: Sample, on_error: str) -> tuple[float, int]:
    """One returned value as a float: None -> NaN ("not applicable", left out of means and scored 0 in the total).
    A NaN, an infinity or a non-number is an error naming the reward and the sample, or, with `on_error="zero"`, 0
    counted as one error."""
    if value is None:
        return float("nan"), 0
    problem = None
    try:
        number = float(value)
    except (TypeError, ValueError):
        problem = f"a non-number {value!r:.80}"
    else:
        if not math.isfinite(number):
            problem = f"{number} (a reward must be a finite number, or None where it does not apply)"
    if problem is None:
        return number, 0
    if on_error == "zero":
        return 0.0, 1
    raise RewardError(f"reward '{reward.name}' returned {problem} for {_sample_label(sample)}; fix the reward, or set "
                      "algorithm.reward_errors=zero to score such values 0 (counted in reward/errors)")


def score_batch(batch: RolloutBatch, rewards: Sequence[BoundReward], *,
                on_error: str = "raise") -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(reward parts: name -> [N], NaN = not applicable; metrics). The step puts the parts into its batch; their
    total is `total_reward`, taken once the experience source has seen them (`after_rewards` may set a label row's).

    `reward/errors` counts values scored 0 under `on_error="zero"`: rewards that raised and values that were NaN,
    infinite or not numbers."""
    samples = [batch.samples[int(i)] for i in batch.prompt_index]
    parts: dict[str, torch.Tensor] = {}
    errors = 0
    completion_ids = [ids[m.bool()].tolist() for ids, m in zip(batch.completion_ids, batch.completion_mask)]
    for reward in rewards:
        values, failed = _values(reward, batch.completions, samples, on_error, batch.group_ids.tolist(), completion_ids)
        errors += failed
        checked = [_as_reward_value(reward, value, sample, on_error) for value, sample in zip(values, samples)]
        errors += sum(bad for _, bad in checked)
        parts[reward.name] = torch.tensor([number for number, _ in checked])
    return parts, {"reward/errors": float(errors)}


def total_reward(parts: Mapping[str, torch.Tensor], rewards: Sequence[BoundReward], rows: int) -> torch.Tensor:
    """[rows]: r_i = sum_k w_k * part_k[i] over the rewards that apply to row i (a NaN part counts 0). A row that every
    reward returned None for has no reward: NaN, which keeps it out of the advantage statistics and the logged reward
    means (TRL does the same; its advantage is 0). Without rewards: zeros."""
    total, scored = torch.zeros(rows), torch.zeros(rows, dtype=torch.bool)
    for reward in rewards:
        part = parts[reward.name]
        total += reward.weight * part.nan_to_num(0.0)
        scored |= ~part.isnan()
    return torch.where(scored, total, torch.full_like(total, float("nan"))) if rewards else total
