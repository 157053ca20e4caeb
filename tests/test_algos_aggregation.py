"""Loss aggregation: hand numbers and exact micro-batch splitting.

Equivalence with TRL and verl is tested against numbers their own code produced: tests/test_parity_trl.py
(every TRL loss type) and tests/test_parity_verl.py (`agg_loss`, every mode).
"""
import pytest
import torch

from mmpost.algos import aggregation as agg
from mmpost.registry import AGGREGATIONS

F64 = torch.float64

# Row 0: tokens 1, 2, 3 (100 masked); row 1: tokens 4, 5. Masked sum 15 over 5 tokens, N = 2, T = 4.
LOSS = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 6.0, 7.0]], dtype=F64)
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=F64)


def test_hand_numbers():
    assert agg.token_mean(LOSS, MASK).item() == pytest.approx(15 / 5)
    assert agg.token_mean(LOSS, MASK, num_tokens=10).item() == pytest.approx(1.5)
    # Per-sequence means 2 and 4.5.
    assert agg.seq_mean_token_mean(LOSS, MASK).item() == pytest.approx((2 + 4.5) / 2)
    assert agg.seq_mean_token_mean(LOSS, MASK, num_sequences=4).item() == pytest.approx(6.5 / 4)
    # Per-sequence sums 6 and 9.
    assert agg.seq_mean_token_sum(LOSS, MASK).item() == pytest.approx(15 / 2)
    assert agg.seq_mean_token_sum_norm(LOSS, MASK).item() == pytest.approx(15 / (2 * 4))
    assert agg.seq_mean_token_sum_norm(LOSS, MASK, norm_constant=10).item() == pytest.approx(15 / 20)
    assert agg.seq_mean_token_sum_norm(LOSS, MASK, num_sequences=3, norm_constant=10).item() == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm", "token_sum_norm"])
def test_masked_nan_does_not_leak_into_value_or_gradient(name):
    fn = AGGREGATIONS.get(name)
    loss = LOSS.clone()
    loss[0, 3] = float("nan")
    loss[1, 2] = float("inf")
    loss.requires_grad_(True)
    value = fn(loss, MASK)
    assert value.item() == pytest.approx(fn(LOSS, MASK).item())
    value.backward()
    assert torch.isfinite(loss.grad).all() and loss.grad[0, 3] == 0 and loss.grad[1, 2] == 0


def test_all_masked_gives_zero():
    zeros = torch.zeros(2, 4, dtype=F64)
    for name in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm", "token_sum_norm"]:
        assert AGGREGATIONS.get(name)(LOSS, zeros).item() == 0.0


def random_batch(n=6, t=5, seed=0, empty_rows=()):
    g = torch.Generator().manual_seed(seed)
    loss = torch.randn(n, t, generator=g, dtype=F64)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(F64)
    for row in empty_rows:
        mask[row] = 0
    return loss, mask


def test_token_sum_norm_by_hand():
    # HPT's loss_remove_token_mean / verl's seq-mean-token-sum-norm: the masked token sum (15) over the constant.
    assert agg.token_sum_norm(LOSS, MASK).item() == pytest.approx(15 / 4)  # C defaults to the padded width T
    assert agg.token_sum_norm(LOSS, MASK, norm_constant=8192).item() == pytest.approx(15 / 8192)
    # On P processes each process contributes its share of sum/(C*P): the references' FSDP gradient average.
    assert agg.token_sum_norm(LOSS, MASK, norm_constant=10, num_processes=2).item() == pytest.approx(15 / 20)
    # Not Dr.GRPO's mode: that one also divides by the number of sequences (here N = 2).
    assert agg.seq_mean_token_sum_norm(LOSS, MASK, norm_constant=10).item() == pytest.approx(
        agg.token_sum_norm(LOSS, MASK, norm_constant=10).item() / 2)
    # Token and sequence counts from a shared config are ignored: the normaliser is the constant only.
    assert agg.token_sum_norm(LOSS, MASK, num_tokens=99, num_sequences=7, norm_constant=10).item() == pytest.approx(1.5)


SPLIT_CASES = [
    ("token_mean", lambda loss, mask: {"num_tokens": mask.sum()}),
    ("seq_mean_token_mean", lambda loss, mask: {"num_sequences": loss.shape[0]}),
    ("seq_mean_token_sum", lambda loss, mask: {"num_sequences": loss.shape[0]}),
    ("seq_mean_token_sum_norm", lambda loss, mask: {"num_sequences": loss.shape[0], "norm_constant": loss.shape[1]}),
    ("token_sum_norm", lambda loss, mask: {"norm_constant": loss.shape[1]}),
]


@pytest.mark.parametrize("name,global_counts", SPLIT_CASES)
def test_split_micro_batches_sum_to_full_batch(name, global_counts):
    fn = AGGREGATIONS.get(name)
    loss, mask = random_batch(n=6, t=5, seed=4)
    mask[2:] = mask[2:] * (torch.arange(5) < 3).to(F64)  # rows 2-5 end by column 3: trim their padding
    counts = global_counts(loss, mask)

    full_input = loss.clone().requires_grad_(True)
    full = fn(full_input, mask)
    full.backward()

    split_input = loss.clone().requires_grad_(True)
    first = fn(split_input[:2], mask[:2], **counts)
    second = fn(split_input[2:, :3], mask[2:, :3], **counts)  # a narrower micro-batch, as after re-padding
    (first + second).backward()

    assert (first + second).item() == pytest.approx(full.item(), abs=1e-12)
    assert torch.allclose(split_input.grad, full_input.grad, atol=1e-12)


def test_hyphenated_aliases_and_errors():
    # verl's names give verl's values: its seq-mean-token-sum-norm is token_sum_norm (tests/test_parity_verl.py).
    for name in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"]:
        assert AGGREGATIONS.get(name.replace("_", "-")) is getattr(agg, name)
    assert AGGREGATIONS.get("seq-mean-token-sum-norm") is agg.token_sum_norm
    # Extra config keys reach every mode without error.
    assert agg.token_mean(LOSS, MASK, num_sequences=7, norm_constant=3).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="mmpost.algos.aggregation: token_loss and mask"):
        agg.token_mean(LOSS, MASK[:, :2])
    with pytest.raises(ValueError, match="num_tokens must be >= 0"):
        agg.token_mean(LOSS, MASK, num_tokens=-1)
