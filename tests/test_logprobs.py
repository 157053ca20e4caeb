"""mmpost/logprobs.py: the one logits -> log-probs tail against values worked out by hand. The passes that feed it
agree with each other in tests/test_packing.py and tests/test_prefix_sharing.py; sampling log-probs equal re-scored
ones in tests/test_recipes.py (`rollout/logprob_mismatch`) and tests/test_policy.py."""
import math
import weakref
from types import SimpleNamespace

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



class _RecordingLM(torch.nn.Module):
    """A stand-in causal LM: fixed random logits, and a weak reference to every logits tensor it returned."""

    def __init__(self, vocabulary: int = 11) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.vocabulary = vocabulary
        self.returned: list = []

    def forward(self, input_ids, attention_mask=None, use_cache=False, logits_to_keep=0, **_):
        logits = torch.randn(*input_ids.shape, self.vocabulary) + self.weight
        self.returned.append(weakref.ref(logits))
        if isinstance(logits_to_keep, torch.Tensor):  # transformers: positions to keep (the packed pass)
            return SimpleNamespace(logits=logits[:, logits_to_keep])
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_the_model_logits_are_freed_before_the_log_softmax(monkeypatch, layout):
    """The tail must not hold the model's logits while it allocates its float32 copy and the log-softmax: that
    would be one more [n, T, V] tensor at the memory peak of every log-prob pass (gigabytes for a 150k vocabulary)."""
    from mmpost.experience import RolloutBatch
    from mmpost.logprobs import completion_logprobs
    from mmpost.types import PromptEncoding

    model = _RecordingLM()
    batch = RolloutBatch(prompts=[PromptEncoding(torch.tensor([1, 2, 3])), PromptEncoding(torch.tensor([4, 5]))],
                         samples=[{}, {}], prompt_index=torch.tensor([0, 1]), group_ids=torch.tensor([0, 1]),
                         completion_ids=torch.tensor([[6, 7, 8], [9, 0, 0]]),
                         completion_mask=torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), sources=["policy"] * 2,
                         is_sft=torch.zeros(2, dtype=torch.bool))
    alive_at_log_softmax = []
    log_softmax = torch.nn.functional.log_softmax

    def watching(logits, dim):
        alive_at_log_softmax.append([ref() is not None for ref in model.returned])
        return log_softmax(logits, dim=dim)

    monkeypatch.setattr(torch.nn.functional, "log_softmax", watching)
    logprobs, _ = completion_logprobs(model, batch, torch.arange(2), pad_id=0, temperature=0.5, layout=layout)
    assert logprobs.shape == (2, 3) and logprobs[1, 1:].tolist() == [0.0, 0.0]
    assert alive_at_log_softmax and not any(any(alive) for alive in alive_at_log_softmax)
