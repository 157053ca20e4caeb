"""Padding-free packing: packed rows give the padded pass's log-probs; token-budget micro-batches."""
import pytest
import torch

from mmpost.logprobs import (completion_logprobs, micro_batch_rows, pack_padded, padded_inputs, position_ids_for,
                             row_token_counts, token_budget_chunks)
from test_prefix_sharing import assert_same_gradients, gradients_of, image_batch


def test_token_budget_chunks_first_fit_decreasing():
    # Worked by hand, longest first: 6 -> bin A; 5 -> bin B; 4 fits neither (10, 9 > 8) -> bin C;
    # 3 -> bin B (5 + 3 = 8); 2 -> bin A (6 + 2 = 8).
    chunks = token_budget_chunks([5, 3, 4, 2, 6], budget=8)
    assert [c.tolist() for c in chunks] == [[3, 4], [0, 1], [2]]
    # A row longer than the budget gets a micro-batch of its own; every row appears once.
    assert [c.tolist() for c in token_budget_chunks(torch.tensor([10, 1, 1]), 4)] == [[0], [1, 2]]
    with pytest.raises(ValueError, match="token_budget"):
        token_budget_chunks([1], 0)


def test_update_micro_batches_per_layout(tiny_vl_dir):
    _, _, batch = image_batch(tiny_vl_dir, (3, 1, 2), 4)  # prompt_index [0, 0, 0, 1, 2, 2]
    rows = torch.tensor([4, 0, 3, 1, 5, 2])
    split = lambda layout, **kw: [c.tolist() for c in micro_batch_rows(batch, rows, layout=layout, micro_batch_size=4, **kw)]
    assert split("padded") == [[4, 0, 3, 1], [5, 2]]
    # Stable sort by prompt: group 0 = rows 0, 1, 2; group 1 = row 3; group 2 = rows 4, 5.
    assert split("shared_prefix") == [[0, 1, 2, 3], [4, 5]]
    lengths = row_token_counts(batch, rows)
    budget = int(lengths.max()) * 2
    chunks = micro_batch_rows(batch, rows, layout="packed", micro_batch_size=4, token_budget=budget)
    assert sorted(torch.cat(chunks).tolist()) == sorted(rows.tolist())
    assert all(int(row_token_counts(batch, c).sum()) <= budget for c in chunks)


def test_packed_positions_restart_at_every_row(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (1, 1, 1), 4)
    rows = torch.arange(len(batch))
    inputs, width = padded_inputs(batch, rows, policy.pad_token_id)
    packed, predictor, valid = pack_padded(model, inputs, width, 4)
    lengths = row_token_counts(batch, rows).tolist()
    assert packed["input_ids"].shape == (1, sum(lengths))
    expected_text = torch.cat([torch.arange(n) for n in lengths])
    assert torch.equal(packed["position_ids"][0, 0], expected_text)
    # Each row's M-RoPE positions are the ones it gets alone, without padding.
    start = 0
    for r, n in zip(rows.tolist(), lengths):
        alone, _ = padded_inputs(batch, torch.tensor([r]), policy.pad_token_id)
        own = position_ids_for(model, alone)[:, 0, alone["attention_mask"][0].bool()]
        assert torch.equal(packed["position_ids"][1:, 0, start : start + n], own)
        start += n
    # Row 0's first completion token is predicted by the last token of its prompt.
    assert predictor[0, 0] == batch.prompts[0].input_ids.numel() - 1
    assert torch.equal(valid, batch.completion_mask.bool())


@pytest.mark.parametrize("budget", [None, 120])
def test_packed_logprobs_equal_the_padded_pass(tiny_vl_dir, budget):
    model, policy, batch = image_batch(tiny_vl_dir, (3, 1, 2), 7, seed=4)
    rows = torch.tensor([0, 4, 1, 3, 2, 5])
    if budget:
        assert len(token_budget_chunks(row_token_counts(batch, rows), budget)) > 1
    kwargs = dict(pad_id=policy.pad_token_id, suppressed_token_ids=policy.suppressed_token_ids, temperature=0.7)
    with torch.no_grad():
        padded, _ = completion_logprobs(model, batch, rows, **kwargs)
        packed, _ = completion_logprobs(model, batch, rows, layout="packed", token_budget=budget, **kwargs)
    assert torch.allclose(packed, padded, atol=1e-5)
    assert (packed[batch.completion_mask[rows] == 0] == 0).all()


def test_packed_rows_never_attend_to_each_other(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (2, 1), 5, seed=5)
    rows = torch.arange(len(batch))
    kwargs = dict(pad_id=policy.pad_token_id, suppressed_token_ids=policy.suppressed_token_ids, layout="packed")
    with torch.no_grad():
        before, _ = completion_logprobs(model, batch, rows, **kwargs)
        batch.completion_ids[0] = batch.completion_ids[0].flip(0)  # row 0 comes first in the packed sequence
        after, _ = completion_logprobs(model, batch, rows, **kwargs)
    assert torch.equal(after[1:], before[1:])
    assert not torch.allclose(after[0], before[0])


def test_packed_gradients_equal_the_padded_pass(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (2, 2), 6, seed=6)
    rows = torch.arange(len(batch))
    weights = torch.randn(batch.completion_ids.shape)
    padded, padded_grads = gradients_of(model, batch, rows, policy, weights, "padded")
    packed, packed_grads = gradients_of(model, batch, rows, policy, weights, "packed")
    assert torch.allclose(packed, padded, atol=1e-5)
    assert_same_gradients(padded_grads, packed_grads)


def test_unknown_layout_is_refused(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (1,), 2)
    with pytest.raises(ValueError, match="algorithm.logprob_pass"):
        completion_logprobs(model, batch, torch.arange(1), pad_id=policy.pad_token_id, layout="ragged")
