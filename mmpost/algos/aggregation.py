"""Loss aggregation: token losses [N, T] and mask [N, T] -> a scalar.

Each mode takes optional GLOBAL normalisers (the token or sequence count of the whole mini-batch).
When the trainer splits a mini-batch into micro-batches and passes the mini-batch's counts to every
call, the SUM of the micro-batch losses equals the full-batch loss exactly, so accumulated gradients
equal the full-batch gradient. Under data parallelism the counts are the global ones and, because
DDP/FSDP average gradients over ranks, the trainer multiplies each rank's loss by the world size (verl
does the same with `dp_size`; TRL's "dapo" divides its count by `num_processes`).

Framework mapping (TRL `GRPOTrainer._compute_loss`, verl `core_algos.agg_loss`), each row checked
against numbers the framework's own code produced (tests/test_parity_trl.py, tests/test_parity_verl.py):

| here                    | TRL loss_type                                   | verl loss_agg_mode                     |
|-------------------------|-------------------------------------------------|----------------------------------------|
| token_mean              | bnpo (local count), dapo (global count)         | token-mean                             |
| seq_mean_token_mean     | grpo                                            | seq-mean-token-mean                    |
| seq_mean_token_sum      | luspo                                           | seq-mean-token-sum                     |
| seq_mean_token_sum_norm | dr_grpo (norm_constant = max_completion_length) | -                                      |
| token_sum_norm          | -                                               | seq-mean-token-sum-norm; HPT's `loss_remove_token_mean` |

verl's "seq-mean-token-sum-norm" is NOT Dr.GRPO's normalisation: verl returns Σ loss·m / C per
micro-batch (C = `loss_scale_factor`, by default the padded response width) with no division by the
number of sequences, so its value is N × `seq_mean_token_sum_norm` (N = the sequences it sums over).
`token_sum_norm` is verl's mode, and the registered name "seq-mean-token-sum-norm" points to it (it
pointed to `seq_mean_token_sum_norm` before, which did not give verl's value). How it composes over
micro-batches and processes: see `token_sum_norm`.

Differences from verl: verl's seq-mean modes divide by the number of sequences with at least one
unmasked token (fully masked rows are left out of the count); here the divisor is N, as TRL's `.mean()`.
"""
from __future__ import annotations

import torch

from mmpost.registry import AGGREGATIONS

_WHERE = __name__
Count = int | float | torch.Tensor | None


def _masked(token_loss: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked losses with masked-out entries set to exactly 0 (NaN/inf there must not leak), and the mask."""
    if token_loss.dim() != 2 or mask.shape != token_loss.shape:
        raise ValueError(
            f"{_WHERE}: token_loss and mask must both be [N, T], got {tuple(token_loss.shape)} and {tuple(mask.shape)}"
        )
    mask = mask.to(token_loss.dtype)
    return torch.where(mask > 0, token_loss, torch.zeros_like(token_loss)) * mask, mask


def _normaliser(given: Count, local: torch.Tensor | int, name: str) -> torch.Tensor | float:
    value = local if given is None else given
    if isinstance(value, torch.Tensor):
        return value.clamp(min=1)
    if value < 0:
        raise ValueError(f"{_WHERE}: {name} must be >= 0, got {value}")
    return max(value, 1)


@AGGREGATIONS.register("token_mean")
def token_mean(token_loss: torch.Tensor, mask: torch.Tensor, *, num_tokens: Count = None, **_: object) -> torch.Tensor:
    """Σ_{i,t} loss·m / (num_tokens or Σ m): every unmasked token weighs the same (DAPO, Yu et al. 2025, eq. 8).

    verl "token-mean"; TRL "bnpo" with the local count, TRL "dapo" with the global count. A count of 0
    is treated as 1 (TRL's clamp), so an all-masked batch gives 0.
    """
    masked, mask = _masked(token_loss, mask)
    return masked.sum() / _normaliser(num_tokens, mask.sum(), "num_tokens")


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(
    token_loss: torch.Tensor, mask: torch.Tensor, *, num_sequences: Count = None, **_: object
) -> torch.Tensor:
    """Σ_i [Σ_t loss·m / max(Σ_t m, 1)] / (num_sequences or N): the original GRPO objective (DeepSeekMath eq. 3).

    TRL "grpo", verl "seq-mean-token-mean" (verl counts only non-empty rows, see the module docstring).
    """
    masked, mask = _masked(token_loss, mask)
    per_sequence = masked.sum(-1) / mask.sum(-1).clamp(min=1)
    return per_sequence.sum() / _normaliser(num_sequences, token_loss.shape[0], "num_sequences")


@AGGREGATIONS.register("seq_mean_token_sum")
def seq_mean_token_sum(
    token_loss: torch.Tensor, mask: torch.Tensor, *, num_sequences: Count = None, **_: object
) -> torch.Tensor:
    """Σ_{i,t} loss·m / (num_sequences or N): per-sequence sums, averaged over sequences.

    verl "seq-mean-token-sum" (verl counts only non-empty rows, see the module docstring).
    """
    masked, _ = _masked(token_loss, mask)
    return masked.sum() / _normaliser(num_sequences, token_loss.shape[0], "num_sequences")


@AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_sequences: Count = None,
    norm_constant: Count = None,
    **_: object,
) -> torch.Tensor:
    """Σ_{i,t} loss·m / ((num_sequences or N) · (norm_constant or T)): Dr.GRPO (Liu et al. 2025, eq. 3).

    A constant length normaliser removes GRPO's length bias. Equals TRL "dr_grpo" when norm_constant
    = max_completion_length. verl's "seq-mean-token-sum-norm" is a different quantity (no division by
    the sequence count): that is `token_sum_norm`.
    """
    masked, _ = _masked(token_loss, mask)
    sequences = _normaliser(num_sequences, token_loss.shape[0], "num_sequences")
    length = _normaliser(norm_constant, token_loss.shape[1], "norm_constant")
    return masked.sum() / (sequences * length)


@AGGREGATIONS.register("token_sum_norm")
def token_sum_norm(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    *,
    norm_constant: Count = None,
    num_processes: int = 1,
    **_: object,
) -> torch.Tensor:
    """Σ_{i,t} loss·m / ((norm_constant or T) · num_processes): a token SUM over a fixed constant.

    verl "seq-mean-token-sum-norm" (`agg_loss`: `sum(seq_losses) / loss_scale_factor`) and HPT's
    `loss_remove_token_mean=True` (Unify-Post-Training `compute_policy_loss`: `(pg_losses * eos_mask)
    .sum() / eos_mask.shape[-1]`, the padded response width = max_response_length 8192 in its
    `train.sh`). No count of tokens or sequences enters, so long responses weigh more.

    Composition, stated exactly. Both reference codes compute Σ/C on each micro-batch of each GPU and
    backpropagate it with weight 1 (HPT: `loss / gradient_accumulation` with gradient_accumulation =
    ppo_mini_batch_size / ppo_micro_batch_size = 64 / 64 = 1, its micro-batches cut by token budget
    (`use_dynamic_bsz`); verl's model-engine path: micro-batch losses summed unscaled). Summed over a
    GPU's micro-batches that is the GPU's token sum / C: "per micro-batch" does not change the value,
    only the grouping. FSDP then AVERAGES gradients over the P GPUs, so the mini-batch objective is
    Σ_{all tokens} / (C · P). This function returns a micro-batch's share of exactly that (the trainer
    passes `num_processes` = P and multiplies by P before DDP's average, as for every mode), so on P
    processes it equals the reference code on P GPUs, and unlike the other modes its value depends on P,
    as the reference's does. To reproduce an 8-GPU run's balance on P processes use
    norm_constant = 8·C/P. verl's legacy `dp_actor` also multiplies each micro-batch by
    1/gradient_accumulation (micro-batch rows / mini-batch rows): its value is this divided by the
    number of micro-batches per rank, which mmpost does not copy (it would make the loss depend on
    `micro_batch_size`). Shapes: [N, T], [N, T] -> scalar.
    """
    masked, _ = _masked(token_loss, mask)
    length = _normaliser(norm_constant, token_loss.shape[1], "norm_constant")
    if num_processes < 1:
        raise ValueError(f"{_WHERE}: num_processes must be >= 1, got {num_processes}")
    return masked.sum() / (length * num_processes)


AGGREGATIONS.add("token-mean", token_mean)
AGGREGATIONS.add("seq-mean-token-mean", seq_mean_token_mean)
AGGREGATIONS.add("seq-mean-token-sum", seq_mean_token_sum)
AGGREGATIONS.add("seq-mean-token-sum-norm", token_sum_norm)
