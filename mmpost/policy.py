"""Token policies: prompts, demonstration targets, the suppressed vocabulary, and per-token log-probs.

Every log-prob the engine uses (old, reference, update) comes from `mmpost.logprobs.completion_logprobs`, under
the same temperature and the same suppressed-token mask used at sampling time, so a re-scored token has exactly
the log-prob it was sampled with.
"""
from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch

from mmpost.experience import RolloutBatch
from mmpost.logprobs import LOGPROB_LAYOUTS, completion_logprobs
from mmpost.model import load_model, load_processor
from mmpost.registry import POLICIES
from mmpost.types import Modality, PromptEncoding, Sample, Task, Vocabulary


@POLICIES.register("token")
class TokenPolicy:
    """A chat model plus the task's prompts and the modality's encoder.

    The policy kind of every transformers model that emits tokens (VLMs, audio LMs, VLAs with action tokens,
    autoregressive world models over frame tokens): a trajectory is a token sequence, log-probs are per token.
    """

    logprob_layouts = LOGPROB_LAYOUTS  # how its log-prob passes may lay rows out (`algorithm.logprob_pass`)
    computes_own_kl = False  # the KL term comes from reference log-probs of the tokens
    # Set per instance from the tokenizer (`__init__`); `vocabulary` gives them to the engine as one value.
    tokenizer: Any
    pad_token_id: int
    eos_token_ids: list[int]
    suppressed_token_ids: list[int]

    @property
    def vocabulary(self) -> Vocabulary:
        """The PolicyKind capability: this policy emits tokens."""
        return Vocabulary(self.tokenizer, self.pad_token_id, tuple(self.eos_token_ids), tuple(self.suppressed_token_ids))

    @classmethod
    def load_model(cls, model_config, path: str) -> torch.nn.Module:
        return load_model(model_config, path)

    @classmethod
    def load_processor(cls, path: str, trust_remote_code: bool = False) -> Any:
        return load_processor(path, trust_remote_code=trust_remote_code)

    def __init__(self, model: torch.nn.Module, processor: Any, task: Task, modality: Modality) -> None:
        self.model = model
        self.processor = processor
        self.task = task
        self.modality = modality
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.eos_token_ids = _eos_ids(self.tokenizer, model)
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.suppressed_token_ids = _media_and_control_ids(self.tokenizer, self.eos_token_ids)
        # A task may restrict the vocabulary (a VLA emits only action tokens): everything else is suppressed
        # at sampling and re-scoring alike.
        allowed = getattr(task, "allowed_token_ids", None)
        if callable(allowed):
            keep = set(allowed(self.tokenizer)) | set(self.eos_token_ids)
            vocabulary = _vocabulary_size(model, self.tokenizer)
            self.suppressed_token_ids = sorted(set(self.suppressed_token_ids) | (set(range(vocabulary)) - keep))

    # -- prompts and targets ----------------------------------------------------------------------
    def encode_prompts(self, samples: Sequence[Sample]) -> list[PromptEncoding]:
        return [self.modality.encode_prompt(self.processor, self.task.prompt(s), s) for s in samples]

    def encode_target(self, text: str) -> list[int]:
        """Demonstration tokens, ending with the end-of-turn token the model must learn to emit."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_token_ids[0]]

    def decode(self, completion_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        return [
            self.tokenizer.decode(ids[m.bool()].tolist(), skip_special_tokens=True)
            for ids, m in zip(completion_ids, mask)
        ]

    def logprobs(self, model: torch.nn.Module, batch: RolloutBatch, rows: torch.Tensor, *, temperature: float,
                 layout: str = "padded", token_budget: int | None = None,
                 full_distribution: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs [n, T] of `rows` under the sampling temperature and vocabulary mask, in the given
        layout (the caller's `LogprobPlan.layout_for`)."""
        return completion_logprobs(model, batch, rows, pad_id=self.pad_token_id, temperature=temperature,
                                   suppressed_token_ids=self.suppressed_token_ids, full_distribution=full_distribution,
                                   layout=layout, token_budget=token_budget)


@contextlib.contextmanager
def adapter_disabled(model: torch.nn.Module):
    """Run a PEFT model as its base model (the reference when the policy is a LoRA adapter)."""
    unwrapped = getattr(model, "module", model)
    with unwrapped.disable_adapter():
        yield


def _vocabulary_size(model: torch.nn.Module, tokenizer: Any) -> int:
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return int(embeddings.weight.shape[0]) if embeddings is not None else len(tokenizer)


def _eos_ids(tokenizer: Any, model: torch.nn.Module) -> list[int]:
    ids: list[int] = []
    generation_config = getattr(model, "generation_config", None)
    eos = getattr(generation_config, "eos_token_id", None)
    for value in ([eos] if isinstance(eos, int) else list(eos or [])) + [tokenizer.eos_token_id]:
        if value is not None and value not in ids:
            ids.append(int(value))
    if not ids:
        raise ValueError("the tokenizer and generation config define no EOS token")
    return ids


def _media_and_control_ids(tokenizer: Any, eos_token_ids: Sequence[int]) -> list[int]:
    """Special tokens a completion must never contain: media placeholders and chat control tokens.

    A sampled `<|image_pad|>` breaks the next forward pass ("image features and image tokens do not
    match"), so sampling and re-scoring both exclude them; EOS stays allowed.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            special.add(tokenizer.convert_tokens_to_ids(token.content))
    return sorted(i for i in special if i is not None and i not in set(eos_token_ids))
