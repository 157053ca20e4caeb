"""Rollouts with transformers' `generate`, sharing the training model's weights (no sync needed)."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from mmpost.distributed import sharded_generation
from mmpost.logprobs import token_logprobs
from mmpost.model import collate_prompts
from mmpost.prefix_sharing import generate_with_shared_prefill
from mmpost.registry import ROLLOUT_BACKENDS
from mmpost.rollout.base import GenerationResult, SamplingParams
from mmpost.types import PromptEncoding, Sample


@ROLLOUT_BACKENDS.register("hf")
class HFGenerateBackend:
    """Prompts are bucketed by length (fewer pad tokens) and generated `batch_size` prompts at a time."""

    def __init__(self, model: torch.nn.Module, *, pad_token_id: int, eos_token_ids: Sequence[int],
                 suppressed_token_ids: Sequence[int] = (), batch_size: int = 16, shared_prefill: bool = True,
                 **_: Any) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.eos_token_ids = list(eos_token_ids)
        self.suppressed_token_ids = list(suppressed_token_ids)
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
