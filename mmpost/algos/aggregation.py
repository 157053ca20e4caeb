"""Loss aggregation: token losses [N, T] and mask [N, T] -> a scalar.

Each mode takes optional GLOBAL normalisers (the token or sequence count of the whole mini-batch).
When the trainer splits a mini-batch into micro-batches and passes the mini-batch's counts to every
call, the SUM of the micro-batch losses equals the full-batch loss exactly, so accumulated gradients
equal the full-batch gradient. Under data parallelism the counts are the global ones and, because
DDP/FSDP average gradients over ranks, the trainer multiplies each rank's loss by the world size (verl
does the same with `dp_size`; TRL's "dapo" divides its count by `num_processes`).

Framework mapping (TRL `GRPOTrainer._compute_loss`, verl `core_algos.agg_loss`):

| here                                   | TRL loss_type             | verl loss_agg_mode        |
|----------------------------------------|---------------------------|---------------------------|
| token_mean                             | bnpo (local count), dapo (global count) | token-mean   |
| seq_mean_token_mean                    | grpo                      | seq-mean-token-mean       |
| seq_mean_token_sum                     | -                         | seq-mean-token-sum        |
| seq_mean_token_sum_norm                | dr_grpo (norm_constant = max_completion_length) | seq-mean-token-sum-norm |

Differences from verl: verl's seq-mean modes divide by the number of sequences with at least one
unmasked token (fully masked rows are left out of the count); here the divisor is N, as TRL's `.mean()`.
Older verl releases (<= 0.4) computed seq-mean-token-sum-norm as Σ loss·m / T without dividing by
the number of sequences, N times the value here. verl's default norm for that mode is the padded width
T of the micro-batch, which changes between micro-batches: pass `norm_constant` for exact splitting.
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
    = max_completion_length, and current verl "seq-mean-token-sum-norm" with `loss_scale_factor`.
    """
    masked, _ = _masked(token_loss, mask)
    sequences = _normaliser(num_sequences, token_loss.shape[0], "num_sequences")
    length = _normaliser(norm_constant, token_loss.shape[1], "norm_constant")
    return masked.sum() / (sequences * length)


AGGREGATIONS.add("token-mean", token_mean)
AGGREGATIONS.add("seq-mean-token-mean", seq_mean_token_mean)
AGGREGATIONS.add("seq-mean-token-sum", seq_mean_token_sum)
AGGREGATIONS.add("seq-mean-token-sum-norm", seq_mean_token_sum_norm)
