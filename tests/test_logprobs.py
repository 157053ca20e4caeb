"""mmpost/logprobs.py: the one logits -> log-probs tail against values worked out by hand. The passes that feed it
agree with each other in tests/test_packing.py and tests/test_prefix_sharing.py; sampling log-probs equal re-scored
ones in tests/test_recipes.py (`rollout/logprob_mismatch`) and tests/test_policy.py."""
import math

import pytest
import torch

from mmpost.logprobs import token_logprobs


def test_token_logprobs_by_hand():
    # exp(logits) = [1, 2, 3]: softmax = [1/6, 2/6, 3/6].
    logits = torch.tensor([[[0.0, math.log(2.0), math.log(3.0)]] * 2])  # shape [1, 2, 3]
    targets = torch.tensor([[2, 1]])
    logprobs, dist = token_logprobs(logits, targets)
    assert logprobs[0].tolist() == pytest.approx([math.log(3 / 6), math.log(2 / 6)])
    assert dist is None
    # Temperature 2: exp(logits / 2) = [1, sqrt 2, sqrt 3].
    logprobs, _ = token_logprobs(logits, targets, temperature=2.0)
    total = 1 + math.sqrt(2) + math.sqrt(3)
    assert logprobs[0].tolist() == pytest.approx([math.log(math.sqrt(3) / total), math.log(math.sqrt(2) / total)])
    # Token 0 suppressed: the distribution is renormalised over [2, 3] -> [2/5, 3/5].
    logprobs, dist = token_logprobs(logits, targets, suppressed_token_ids=[0], full_distribution=True)
    assert logprobs[0].tolist() == pytest.approx([math.log(3 / 5), math.log(2 / 5)])
    assert dist.shape == (1, 2, 3) and dist[0, 0].exp().tolist() == pytest.approx([0.0, 2 / 5, 3 / 5])


def test_masked_slots_are_zero_even_for_a_suppressed_target():
    logits = torch.zeros(1, 2, 3)
    targets = torch.tensor([[1, 0]])  # slot 1 holds a suppressed token, as padding after EOS may
    logprobs, _ = token_logprobs(logits, targets, suppressed_token_ids=[0], mask=torch.tensor([[True, False]]))
    assert logprobs[0].tolist() == pytest.approx([math.log(1 / 2), 0.0])
    unmasked, _ = token_logprobs(logits, targets, suppressed_token_ids=[0])
    assert unmasked[0, 1] == float("-inf")  # what the mask keeps out of a loss (-inf * 0 = NaN)


def test_any_leading_shape_and_float32_output():
    logits = torch.randn(5, 7, dtype=torch.bfloat16)  # packed layout: [K, V] and [K] targets
    targets = torch.randint(0, 7, (5,))
    logprobs, _ = token_logprobs(logits, targets, temperature=0.5)
    expected = torch.log_softmax(logits.float() / 0.5, -1).gather(-1, targets[:, None]).squeeze(-1)
    assert logprobs.dtype == torch.float32 and torch.equal(logprobs, expected)

