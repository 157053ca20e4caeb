"""Reward values: None is "not applicable"; NaN, infinity or a non-number is an error naming the reward and the sample,
or 0 counted in reward/errors with algorithm.reward_errors=zero."""
import math

import pytest
import torch

from mmpost.experience import RolloutBatch
from mmpost.scoring import BoundReward, RewardError, score_batch, total_reward


def batch_of(n: int) -> RolloutBatch:
    samples = [{"id": f"s{i}", "_source": f"data.jsonl:{i + 1}"} for i in range(n)]
    return RolloutBatch(prompts=[], samples=samples, prompt_index=torch.arange(n), group_ids=torch.zeros(n, dtype=torch.long),
                        completion_ids=torch.ones(n, 2, dtype=torch.long), completion_mask=torch.ones(n, 2),
                        sources=["policy"] * n, is_sft=torch.zeros(n, dtype=torch.bool), completions=["a"] * n)


def returning(name, values, weight=1.0):
    return BoundReward(name, weight, lambda completions, samples: list(values), {})


@pytest.mark.parametrize("bad,shown", [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf"), ("high", "'high'")])
def test_non_finite_or_non_numeric_value_names_reward_and_sample(bad, shown):
    with pytest.raises(RewardError) as error:
        score_batch(batch_of(3), [returning("accuracy", [1.0, bad, 0.0])])
    message = str(error.value)
    assert message.startswith(f"reward 'accuracy' returned {'a non-number ' if isinstance(bad, str) else ''}{shown}")
    assert "sample id 's1' (data.jsonl:2)" in message and "algorithm.reward_errors=zero" in message


def test_zero_mode_scores_bad_values_zero_and_counts_them():
    batch = batch_of(4)
    batch.reward_parts, metrics = score_batch(batch, [returning("accuracy", [1.0, float("nan"), None, float("inf")]),
                                  returning("format", [0.5, 0.5, 0.5, 0.5], weight=2.0)], on_error="zero")
    assert metrics == {"reward/errors": 2.0}
    part = batch.reward_parts["accuracy"]
    assert part[0] == 1.0 and part[1] == 0.0 and math.isnan(part[2]) and part[3] == 0.0  # None stays "not applicable"
    rewards = [returning("accuracy", []), returning("format", [], weight=2.0)]
    assert total_reward(batch.reward_parts, rewards, 4).tolist() == [2.0, 1.0, 1.0, 1.0]  # 1*accuracy (n/a as 0) + 2*format


def test_none_is_not_applicable_and_not_an_error():
    batch = batch_of(2)
    batch.reward_parts, metrics = score_batch(batch, [returning("judge", [None, 0.25])])
    assert metrics == {"reward/errors": 0.0}
    assert math.isnan(batch.reward_parts["judge"][0])
    total = total_reward(batch.reward_parts, [returning("judge", [])], 2)
    assert math.isnan(total[0]) and total[1] == 0.25  # no reward applied to row 0: no reward, not 0
