"""The rollout-backend protocol, designed for HF `generate` now and vLLM later.

A request is a batch of encoded prompts (token ids plus media) and the samples they came from (a backend
such as vLLM takes raw media as `multi_modal_data`); the result is, per prompt, n completions as token ids
with the log-probs the engine sampled them with, when the backend reports them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from mmpost.types import PolicyKind, PromptEncoding, Sample, Vocabulary


class RolloutBackendError(RuntimeError):
    """The rollout engine failed (its process died, or it raised): the message names the backend, the phase
    and the cause. The trainer stops on it without writing a checkpoint for the step."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    greedy: bool = False


@dataclass
class GenerationResult:
    """Prompt-major: row i * n + j is sample j of prompt i."""

    completion_ids: list[list[int]]  # without padding, ending at (and including) EOS when one was sampled
    logprobs: list[list[float]] | None = None  # per token, under the sampling distribution
    # Per-row tensors the policy kind needs to re-score the rows (dim 0 = rows, prompt-major), e.g. a denoising
    # chain's latents; outputs handed to rewards instead of decoded text (e.g. images); per-row masks over
    # `completion_ids` overriding the EOS-derived one (e.g. which denoising steps are trained).
    aux: dict[str, torch.Tensor] | None = None
    outputs: list | None = None
    masks: list[list[float]] | None = None


class RolloutBackend(Protocol):
    def generate(
        self, prompts: Sequence[PromptEncoding], samples: Sequence[Sample], params: SamplingParams
    ) -> GenerationResult: ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the backend sample from `model`'s current weights (a no-op when it shares them)."""


def token_vocabulary(policy: PolicyKind | None, pad_token_id: int | None, eos_token_ids: Sequence[int] | None,
                     suppressed_token_ids: Sequence[int] | None, *, backend: str) -> Vocabulary:
    """The tokens a token-sampling backend works with: the policy kind's `vocabulary`, or the ones given directly
    (a caller without a policy kind); a value given directly wins over the policy's."""
    vocabulary = policy.vocabulary if policy is not None else None
    if vocabulary is None and (pad_token_id is None or eos_token_ids is None):
        what = f"policy kind {type(policy).__name__}, which emits no tokens" if policy is not None else "no policy"
        raise TypeError(f"the {backend} rollout backend samples tokens: it needs a token policy (policy=...) or "
                        f"pad_token_id and eos_token_ids; it got {what}")
    return Vocabulary(
        tokenizer=vocabulary.tokenizer if vocabulary is not None else None,
        pad_token_id=int(pad_token_id if pad_token_id is not None else vocabulary.pad_token_id),
        eos_token_ids=tuple(eos_token_ids if eos_token_ids is not None else vocabulary.eos_token_ids),
        suppressed_token_ids=tuple(suppressed_token_ids if suppressed_token_ids is not None
                                   else (vocabulary.suppressed_token_ids if vocabulary is not None else ())))
