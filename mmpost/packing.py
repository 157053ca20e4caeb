"""Padding-free forward passes: rows concatenated into one sequence, and token-budget micro-batches.

A padded pass over rows of very different lengths spends most of its attention and MLP work on pad tokens (left
pad of short prompts, right pad after EOS). Here the valid tokens of every row ([prompt | completion up to EOS])
are laid end to end in one sequence of shape [1, S]. Position ids restart at 0 for every row, and transformers
builds a block-causal mask from those restarts (`masking_utils.find_packed_sequence_indices`, used when no
attention mask is passed), so no token attends across rows, for sdpa, eager and flash-attention alike.

Qwen-VL's M-RoPE positions (3 rows: temporal, height, width) are computed per row with the model's own
`get_rope_index` over the padded layout, then the valid columns are kept; the packed `position_ids` is then
[4, 1, S]: the 1-D text positions (which the mask uses) stacked on the 3-D M-RoPE ones, the layout
`Qwen2_5_VLTextModel.forward` documents for packed inputs.

This module returns logits; `mmpost.logprobs` turns them into log-probs like every other pass.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mmpost.model import accepts_argument, position_ids_for, text_position_ids
from mmpost.types import RolloutBatch


def token_budget_chunks(lengths: Sequence[int] | torch.Tensor, budget: int) -> list[torch.Tensor]:
    """Split rows into micro-batches of at most `budget` tokens each (first-fit decreasing bin packing).

    lengths: [N] tokens per row. Returns a list of row-index tensors (each sorted ascending); a row longer than the
    budget gets a micro-batch of its own. Every row appears in exactly one chunk.
    """
    if budget <= 0:
        raise ValueError(f"algorithm.token_budget must be positive, got {budget}")
    lengths = [int(x) for x in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
    bins: list[list[int]] = []
    loads: list[int] = []
    for row in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        target = next((b for b, load in enumerate(loads) if load + lengths[row] <= budget), None)
        if target is None:
            bins.append([row])
            loads.append(lengths[row])
        else:
            bins[target].append(row)
            loads[target] += lengths[row]
    return [torch.tensor(sorted(b), dtype=torch.long) for b in bins]


def row_token_counts(batch: RolloutBatch, rows: torch.Tensor) -> torch.Tensor:
    """Valid tokens (prompt + completion through EOS) of each row: [n] long, the lengths a packed pass processes."""
    prompt = torch.tensor([batch.prompts[int(i)].input_ids.numel() for i in batch.prompt_index[rows]], dtype=torch.long)
    return prompt + batch.completion_mask[rows].sum(1).long()


def pack_padded(model: nn.Module, inputs: dict[str, torch.Tensor], width: int, completion_width: int):
    """Turn padded [left-padded prompt | right-padded completion] inputs into one packed row.

    Returns (packed inputs for the model, predictor index [n, T] into the packed sequence, valid [n, T] bool):
    the logit at packed position predictor[i, j] predicts completion token j of row i where valid[i, j].
    """
    mask = inputs["attention_mask"].bool()
    positions = position_ids_for(model, inputs)
    text = text_position_ids(inputs["attention_mask"])[mask].unsqueeze(0)  # [1, S], restarting at every row
    if positions.ndim == 3:
        packed_positions = torch.cat([text.unsqueeze(0), positions[:, mask].unsqueeze(1)], dim=0)  # [4, 1, S]
    else:
        packed_positions = text
    packed = {"input_ids": inputs["input_ids"][mask].unsqueeze(0), "position_ids": packed_positions}
    for key, value in inputs.items():
        if key in ("input_ids", "attention_mask", "position_ids"):
            continue
        if value.ndim >= 2 and value.shape[:2] == mask.shape:
            packed[key] = value[mask].unsqueeze(0)  # per-token fields such as mm_token_type_ids
        else:
            packed[key] = value  # media rows, already in row order
    flat_index = mask.flatten().long().cumsum(0).view(mask.shape) - 1
    predictor = flat_index[:, width - 1 : width - 1 + completion_width]
    valid = mask[:, width : width + completion_width]
    return packed, predictor, valid


def packed_logits(model: nn.Module, packed: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
    """Logits [K, V] at the K positions `keep` of one packed sequence (`pack_padded`'s inputs and `predictor[valid]`).

    Only those positions go through the LM head (`logits_to_keep` as an index tensor when the model takes it), so
    prompt tokens cost no vocabulary projection.
    """
    if accepts_argument(model, "logits_to_keep"):
        return model(**packed, use_cache=False, logits_to_keep=keep).logits[0]
    return model(**packed, use_cache=False).logits[0, keep]
