"""Loss aggregation: hand numbers, equivalence with TRL and verl, and exact micro-batch splitting.

Reference one-liners are written out independently below from:
- TRL `GRPOTrainer._compute_loss` (huggingface/trl, trl/trainer/grpo_trainer.py), loss_type branches
  grpo / bnpo / dr_grpo / dapo (before TRL's own division by gradient-accumulation steps).
- verl `agg_loss` (verl-project/verl, verl/trainer/ppo/core_algos.py) with dp_size = 1 and no global
  batch info, and the older verl (<= 0.4) seq-mean-token-sum-norm, which divided by T only.
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


@pytest.mark.parametrize("name", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"])
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
    for name in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]:
        assert AGGREGATIONS.get(name)(LOSS, zeros).item() == 0.0


# --- independent references ---------------------------------------------------------------------
def trl_grpo(l, m):
    return ((l * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()


def trl_bnpo(l, m):
    return (l * m).sum() / m.sum().clamp(min=1.0)


def trl_dr_grpo(l, m, max_completion_length):
    return (l * m).sum() / (l.size(0) * max_completion_length)


def trl_dapo(l, m, num_items_in_batch, num_processes=1):
    return (l * m).sum() / (num_items_in_batch / num_processes)


def verl_agg_loss(l, m, mode, loss_scale_factor=None):
    if mode == "token-mean":
        return (l * m).sum() / m.sum()
    seq_counts = m.sum(-1)
    seq_mask = (seq_counts > 0).to(l.dtype)
    if mode == "seq-mean-token-mean":
        return ((l * m).sum(-1) / (seq_counts + 1e-8) * seq_mask).sum() / seq_mask.sum()
    loss = ((l * m).sum(-1) * seq_mask).sum() / seq_mask.sum()
    if mode == "seq-mean-token-sum-norm":
        loss = loss / (l.shape[-1] if loss_scale_factor is None else loss_scale_factor)
    return loss


def verl_old_seq_mean_token_sum_norm(l, m):
    return (l * m).sum(-1).sum() / m.shape[-1]


def random_batch(n=6, t=5, seed=0, empty_rows=()):
    g = torch.Generator().manual_seed(seed)
    loss = torch.randn(n, t, generator=g, dtype=F64)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(F64)
    for row in empty_rows:
        mask[row] = 0
    return loss, mask


def test_equivalence_with_trl():
    loss, mask = random_batch()
    assert agg.seq_mean_token_mean(loss, mask).item() == pytest.approx(trl_grpo(loss, mask).item(), abs=1e-12)
    assert agg.token_mean(loss, mask).item() == pytest.approx(trl_bnpo(loss, mask).item(), abs=1e-12)
    assert agg.seq_mean_token_sum_norm(loss, mask, norm_constant=16).item() == pytest.approx(
        trl_dr_grpo(loss, mask, 16).item(), abs=1e-12
    )
    # dapo: each micro-batch divides by the token count of the whole accumulated batch.
    total_tokens = mask.sum()
    ours = sum(agg.token_mean(loss[s], mask[s], num_tokens=total_tokens) for s in (slice(0, 2), slice(2, 6)))
    trl = sum(trl_dapo(loss[s], mask[s], total_tokens) for s in (slice(0, 2), slice(2, 6)))
    assert ours.item() == pytest.approx(trl.item(), abs=1e-12)
    assert ours.item() == pytest.approx(trl_bnpo(loss, mask).item(), abs=1e-12)


def test_equivalence_with_verl_without_empty_rows():
    loss, mask = random_batch(seed=1)
    assert agg.token_mean(loss, mask).item() == pytest.approx(verl_agg_loss(loss, mask, "token-mean").item(), abs=1e-12)
    assert agg.seq_mean_token_mean(loss, mask).item() == pytest.approx(
        verl_agg_loss(loss, mask, "seq-mean-token-mean").item(), abs=1e-7
    )
    assert agg.seq_mean_token_sum(loss, mask).item() == pytest.approx(
        verl_agg_loss(loss, mask, "seq-mean-token-sum").item(), abs=1e-12
    )
    assert agg.seq_mean_token_sum_norm(loss, mask).item() == pytest.approx(
        verl_agg_loss(loss, mask, "seq-mean-token-sum-norm").item(), abs=1e-12
    )
    assert agg.seq_mean_token_sum_norm(loss, mask, norm_constant=32).item() == pytest.approx(
        verl_agg_loss(loss, mask, "seq-mean-token-sum-norm", loss_scale_factor=32).item(), abs=1e-12
    )


def test_documented_differences_from_verl():
    # Fully masked rows: verl leaves them out of the sequence count, here (and in TRL) they count.
    loss, mask = random_batch(n=4, seed=2, empty_rows=(1,))
    verl = verl_agg_loss(loss, mask, "seq-mean-token-mean").item()
    assert agg.seq_mean_token_mean(loss, mask).item() == pytest.approx(verl * 3 / 4, abs=1e-7)
    assert agg.seq_mean_token_mean(loss, mask, num_sequences=3).item() == pytest.approx(verl, abs=1e-7)
    assert agg.seq_mean_token_sum(loss, mask).item() == pytest.approx(
        verl_agg_loss(loss, mask, "seq-mean-token-sum").item() * 3 / 4, abs=1e-12
    )
    # Older verl seq-mean-token-sum-norm did not divide by the number of sequences: N times ours.
    loss, mask = random_batch(seed=3)
    assert verl_old_seq_mean_token_sum_norm(loss, mask).item() == pytest.approx(
        6 * agg.seq_mean_token_sum_norm(loss, mask).item(), abs=1e-12
    )


SPLIT_CASES = [
    ("token_mean", lambda loss, mask: {"num_tokens": mask.sum()}),
    ("seq_mean_token_mean", lambda loss, mask: {"num_sequences": loss.shape[0]}),
    ("seq_mean_token_sum", lambda loss, mask: {"num_sequences": loss.shape[0]}),
    ("seq_mean_token_sum_norm", lambda loss, mask: {"num_sequences": loss.shape[0], "norm_constant": loss.shape[1]}),
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
    for name in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]:
        assert AGGREGATIONS.get(name.replace("_", "-")) is getattr(agg, name)
    # Extra config keys reach every mode without error.
    assert agg.token_mean(LOSS, MASK, num_sequences=7, norm_constant=3).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="mmpost.algos.aggregation: token_loss and mask"):
        agg.token_mean(LOSS, MASK[:, :2])
    with pytest.raises(ValueError, match="num_tokens must be >= 0"):
        agg.token_mean(LOSS, MASK, num_tokens=-1)
