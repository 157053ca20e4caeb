"""Shared-prefix log-prob passes: each distinct prompt runs once, its KV cache serves all of its completions.

The G completions of a GRPO group share one prompt, and in multimodal RL the prompt (hundreds to thousands of
image/video tokens) is usually far longer than the completion. The naive pass runs [prompt | completion] for every
row, so the prompt's layers run G times. Here:

1. the distinct prompts of the rows run once, left-padded, with a KV cache (and with gradients in the update pass);
2. each layer's cached keys/values are gathered to the rows (`index_select`, whose backward sums the rows'
   gradients into the one prompt computation, so parameter gradients equal the naive pass's);
3. the completions run on top of the gathered cache, with positions continuing the prompt's (for M-RoPE the
   completion is text, so all three axes continue from the prompt's last position + 1, as `get_rope_index` gives).

The logit that predicts completion token 0 is the prompt's last-position logit; the others come from step 3.
This module returns logits; `mmpost.logprobs` turns them into log-probs like every other pass. The rollout backend
uses the same prefill for generation (`generate_with_shared_prefill`).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from transformers import DynamicCache

from mmpost.model import accepts_argument, collate_prompts, position_ids_for, rope_index_module, unwrap
from mmpost.types import PromptEncoding, RolloutBatch


def _cache_argument(model: nn.Module) -> str:
    # transformers 5.2x renamed `past_key_values` to `cache` (the old name still works, with a deprecation warning).
    return "cache" if accepts_argument(model, "cache") else "past_key_values"


def _output_cache(output) -> DynamicCache:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def gather_cache(cache: DynamicCache, index: torch.Tensor) -> DynamicCache:
    """A new cache whose row r is row index[r] of `cache` in every layer (differentiable: gradients sum back)."""
    layers = [(layer.keys.index_select(0, index), layer.values.index_select(0, index)) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=layers)


def prefill(model: nn.Module, inputs: dict[str, torch.Tensor], position_ids: torch.Tensor):
    """One cached forward over left-padded prompts: (last-position logits [P, V], KV cache)."""
    logits_to_keep = {"logits_to_keep": 1} if accepts_argument(model, "logits_to_keep") else {}
    output = model(**inputs, position_ids=position_ids, use_cache=True, **logits_to_keep)
    return output.logits[:, -1, :], _output_cache(output)


def collated_prompts(prompts: Sequence[PromptEncoding], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in collate_prompts(prompts, pad_id).items()}


def step_collation(batch: RolloutBatch, distinct: torch.Tensor, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The collated inputs of `batch`'s prompts `distinct`, made once per batch: the reference and update passes of a
    step then hand the model the same tensors (no second copy of the pixels; the vision cache recognises them)."""
    memo = batch.__dict__.setdefault("_collated_prompts", {})
    key = (tuple(distinct.tolist()), pad_id, str(device))
    if key not in memo:
        memo[key] = collated_prompts([batch.prompts[int(i)] for i in distinct], pad_id, device)
    return memo[key]


def continuation_positions(prompt_positions: torch.Tensor, length: int) -> torch.Tensor:
    """Positions of `length` text tokens after left-padded prompts: last prompt position + 1 + j.

    prompt_positions: [3, P, W] (M-RoPE) or [P, W]; returns [3, P, length] or [P, length].
    """
    steps = torch.arange(1, length + 1, device=prompt_positions.device)
    return prompt_positions[..., -1:] + steps


def shared_prefix_logits(model: nn.Module, batch: RolloutBatch, rows: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Logits [n, T, V] predicting each completion token of `rows` (position j predicts token j)."""
    device = next(model.parameters()).device
    distinct, inverse = torch.unique(batch.prompt_index[rows], return_inverse=True)
    inverse = inverse.to(device)
    prompts = step_collation(batch, distinct, pad_id, device)
    positions = position_ids_for(model, prompts)
    first, cache = prefill(model, prompts, positions)
    prompt_mask = prompts["attention_mask"]
    first = first.index_select(0, inverse).unsqueeze(1)  # [n, 1, V]
    completion_ids = batch.completion_ids[rows].to(device)
    width = completion_ids.shape[1]
    if width <= 1:
        return first[:, :width]
    # The last completion token predicts nothing we score, so it is not fed.
    fed = completion_ids[:, : width - 1]
    attention = torch.cat([prompt_mask.index_select(0, inverse),
                           batch.completion_mask[rows, : width - 1].long().to(device)], 1)
    later_positions = continuation_positions(positions, width - 1).index_select(-2, inverse)
    output = model(input_ids=fed, attention_mask=attention, position_ids=later_positions, use_cache=True,
                   **{_cache_argument(model): gather_cache(cache, inverse)})
    return torch.cat([first, output.logits], dim=1)


def checkpointing_drops_cache(model: nn.Module) -> bool:
    """True when transformers' gradient checkpointing would discard the KV cache of this forward pass
    (`GradientCheckpointingLayer` turns `use_cache` off in training with gradients), so no prefix can be shared."""
    return (torch.is_grad_enabled() and model.training
            and any(getattr(m, "gradient_checkpointing", False) for m in unwrap(model).modules()))


@torch.no_grad()
def generate_with_shared_prefill(model: nn.Module, inputs: dict[str, torch.Tensor], *, num_return_sequences: int,
                                 **generate_kwargs):
    """`model.generate(**inputs, num_return_sequences=G, **generate_kwargs)` with each prompt prefilled once.

    `generate` repeats every prompt G times before its prefill, so the prompt's layers (and, before transformers 5,
    its images) run G times. Here prompt[:-1] (all media included) runs once, its KV cache is gathered to the G
    copies, and `generate` continues from the cache with the last prompt token. inputs: left-padded collated
    prompts [P, W] plus media. Returns what `generate` returns, rows ordered prompt-major as with
    `num_return_sequences`. M-RoPE models get their `rope_deltas` set for the expanded rows, as `generate` would.
    """
    copies = num_return_sequences
    prompts, width = inputs["input_ids"].shape
    if width < 2 or copies == 1:
        return model.generate(**inputs, num_return_sequences=copies, **generate_kwargs)
    positions = position_ids_for(model, inputs)
    head = {k: (v[:, : width - 1] if v.ndim >= 2 and v.shape[:2] == (prompts, width) else v) for k, v in inputs.items()}
    _, head_cache = prefill(model, head, positions[..., : width - 1])
    rows = torch.arange(prompts, device=inputs["input_ids"].device).repeat_interleave(copies)
    cache = gather_cache(head_cache, rows)
    module = rope_index_module(model)
    if module is not None and positions.ndim == 3:
        # The offset between M-RoPE and 1-D positions after the prompt (`get_rope_index`'s mrope_position_deltas).
        valid = inputs["attention_mask"].sum(1)
        deltas = positions[:, :, -1].max(0).values + 1 - valid
        module.rope_deltas = deltas.index_select(0, rows).unsqueeze(1)
    return model.generate(input_ids=inputs["input_ids"].index_select(0, rows),
                          attention_mask=inputs["attention_mask"].index_select(0, rows),
                          num_return_sequences=1, **{_cache_argument(model): cache}, **generate_kwargs)
