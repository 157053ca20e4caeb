"""Rollouts with transformers' `generate`, sharing the training model's weights (no sync needed).

Each prompt (its media included) is prefilled once and its KV cache copied to its n samples
(`generate_with_shared_prefill`, with the log-prob passes' `prefill` and `gather_cache`); the sampling log-probs
come from `mmpost.logprobs.token_logprobs`, the function that re-scores them in the update."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from mmpost.distributed import sharded_generation
from mmpost.logprobs import cache_argument, gather_cache, position_ids_for, prefill, rope_index_module, token_logprobs
from mmpost.registry import ROLLOUT_BACKENDS
from mmpost.rollout.base import GenerationResult, SamplingParams, token_vocabulary
from mmpost.types import PolicyKind, PromptEncoding, Sample, collate_prompts


@ROLLOUT_BACKENDS.register("hf")
class HFGenerateBackend:
    """Prompts are bucketed by length (fewer pad tokens) and generated `batch_size` prompts at a time.

    The engine builds it as every backend, `(model, policy=..., **rollout.backend_args)`: the tokens come from the
    policy's `vocabulary`. Code that has no policy kind (a PRM, an evaluation runner) gives them directly instead
    (`pad_token_id`, `eos_token_ids`, `suppressed_token_ids`). Options: `batch_size`, `shared_prefill`.
    """

    def __init__(self, model: torch.nn.Module, *, policy: PolicyKind | None = None, pad_token_id: int | None = None,
                 eos_token_ids: Sequence[int] | None = None, suppressed_token_ids: Sequence[int] | None = None,
                 batch_size: int = 16, shared_prefill: bool = True) -> None:
        vocabulary = token_vocabulary(policy, pad_token_id, eos_token_ids, suppressed_token_ids, backend="hf")
        self.model = model
        self.pad_token_id = vocabulary.pad_token_id
        self.eos_token_ids = list(vocabulary.eos_token_ids)
        self.suppressed_token_ids = list(vocabulary.suppressed_token_ids)
        self.batch_size = batch_size
        # Prefill each prompt once and copy its KV cache to the n samples (generate alone prefills it n times).
        self.shared_prefill = shared_prefill

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[PromptEncoding], samples: Sequence[Sample], params: SamplingParams) -> GenerationResult:
        order = sorted(range(len(prompts)), key=lambda i: prompts[i].input_ids.numel())
        by_prompt: dict[int, tuple[list[list[int]], list[list[float]]]] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            ids, logprobs = self._generate_chunk([prompts[i] for i in chunk], params)
            for k, i in enumerate(chunk):
                rows = slice(k * params.n, (k + 1) * params.n)
                by_prompt[i] = (ids[rows], logprobs[rows])
        completion_ids = [seq for i in range(len(prompts)) for seq in by_prompt[i][0]]
        completion_logprobs = [lp for i in range(len(prompts)) for lp in by_prompt[i][1]]
        return GenerationResult(completion_ids, completion_logprobs)

    def _generate_chunk(self, prompts: Sequence[PromptEncoding], params: SamplingParams):
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in collate_prompts(prompts, self.pad_token_id).items()}
        sampling: dict[str, Any] = {"do_sample": False} if params.greedy else {
            "do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k or None,
        }
        was_training = self.model.training
        self.model.eval()
        try:
            # Sharded weights (FSDP2, ZeRO-3) are gathered inside forwards: every rank must take part in each one.
            with sharded_generation(self.model) as synced:
                kwargs = dict(**sampling, max_new_tokens=params.max_new_tokens, eos_token_id=self.eos_token_ids,
                              pad_token_id=self.pad_token_id, suppress_tokens=self.suppressed_token_ids or None,
                              output_scores=True, return_dict_in_generate=True, synced_gpus=synced)
                if self.shared_prefill and params.n > 1 and not synced:
                    out = generate_with_shared_prefill(self.model, inputs, num_return_sequences=params.n, **kwargs)
                else:
                    out = self.model.generate(**inputs, num_return_sequences=params.n, **kwargs)
        finally:
            self.model.train(was_training)
        width = inputs["input_ids"].shape[1]
        new_tokens = out.sequences[:, width:]
        eos = set(self.eos_token_ids)
        rows = new_tokens.tolist()
        lengths = [next((j + 1 for j, t in enumerate(row) if t in eos), len(row)) for row in rows]
        ids = [row[:length] for row, length in zip(rows, lengths)]
        if not out.scores:
            return ids, [[] for _ in ids]
        # `scores` are the logits after generate's processors (temperature, top-k/p, suppressed tokens): the
        # distribution each token was drawn from, so the tail runs at temperature 1 with nothing more suppressed.
        logprobs, _ = token_logprobs(torch.stack(out.scores, dim=1), new_tokens)
        return ids, [row[:length] for row, length in zip(logprobs.tolist(), lengths)]


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
                          num_return_sequences=1, **{cache_argument(model): cache}, **generate_kwargs)
