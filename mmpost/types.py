"""What the engine's plugins are and hand it: samples, prompt encodings (and how they are collated into a batch),
the Modality / Task / PolicyKind protocols, media roots and data errors.

The batch a step trains on (`RolloutBatch`, `RowKind`) lives with the code that builds it, `mmpost.experience`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

Sample = dict[str, Any]
"""One dataset row: `id`, `problem`, `answer`, media fields (`images`, `videos`, `audios`) and any extras.
Before rewards see it, the modality adapter adds decoded media under `decoded` (e.g. PIL images)."""

Message = dict[str, Any]
"""A chat message in the transformers multimodal form: {"role": ..., "content": [{"type": "image"}, ...]}."""


@dataclass
class PromptEncoding:
    """A prompt ready for the model: token ids plus the media tensors of this one prompt.

    `media` tensors are concatenated along dim 0 across rows to build a batch (true for the Qwen-VL
    family's flattened patches and grid rows, and for audio feature stacks).
    """

    input_ids: torch.Tensor  # [P] long
    media: dict[str, torch.Tensor] = field(default_factory=dict)
    text: str = ""
    token_fields: dict[str, torch.Tensor] = field(default_factory=dict)
    """Per-token tensors aligned with `input_ids` (e.g. transformers 5's `mm_token_type_ids`, which Qwen-VL
    needs for its M-RoPE positions): padded like the ids with 0, and extended with 0 over completions."""


def collate_prompts(prompts: Sequence[PromptEncoding], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prompt ids and concatenate media rows along dim 0."""
    width = max(p.input_ids.numel() for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        n = p.input_ids.numel()
        input_ids[i, width - n :] = p.input_ids
        attention_mask[i, width - n :] = 1
    batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
    for key in sorted({k for p in prompts for k in p.token_fields}):
        values = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            if key in p.token_fields:
                values[i, width - p.input_ids.numel() :] = p.token_fields[key]
        batch[key] = values
    # A text-only prompt contributes no media rows; the model matches media rows to placeholder tokens in order.
    for key in sorted({k for p in prompts for k in p.media}):
        batch[key] = torch.cat([p.media[key] for p in prompts if key in p.media], dim=0)
    return batch


@runtime_checkable
class Modality(Protocol):
    """Turns a sample's messages and media into model inputs and decodes media for rewards."""

    name: str

    def decode(self, sample: Sample, root: str | None = None) -> Sample:
        """Load the sample's media (raising MediaError naming the file) and return the sample with `decoded`."""

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """Apply the chat template, process media, and return the prompt encoding."""


@runtime_checkable
class Task(Protocol):
    """A dataset with its prompt, its demonstration text and its default rewards."""

    name: str
    modality: str
    default_rewards: Sequence[dict]  # [{"name": ..., "weight": ..., "args": {...}}]
    accuracy_reward: str  # the reward whose value is the held-out accuracy

    def load(self, split: str, **args: Any) -> Sequence[Sample]: ...

    def prompt(self, sample: Sample) -> list[Message]: ...

    def target(self, sample: Sample) -> str:
        """The demonstration completion (what SFT trains on and ViSurf injects)."""


@dataclass(frozen=True)
class Vocabulary:
    """The tokens of a policy kind whose trajectories are token sequences: what sampling, padding and decoding need.

    A policy kind declares one as its `vocabulary` capability, or None when it emits no tokens (the denoising
    policy); code that needs tokens reads it there and never finds placeholder values.
    """

    tokenizer: Any
    pad_token_id: int
    eos_token_ids: tuple[int, ...]
    suppressed_token_ids: tuple[int, ...] = ()  # never sampled, -inf when re-scored (media placeholders, ...)


@runtime_checkable
class PolicyKind(Protocol):
    """What the engine asks of a policy kind (`model.policy`: token, denoising, a plugin's), and nothing more: the
    registry checks these members when a kind registers, so the engine reads them instead of probing with hasattr.

    A kind declares its capabilities as values: `logprob_layouts` (how its log-prob passes may lay rows out; the
    first is used when it has one), `computes_own_kl` (True: its `kl_terms` gives the KL term, as Flow-GRPO's
    KL between step means; False: the KL comes from reference log-probs of its rows) and `vocabulary` (its tokens,
    or None for a kind that emits none)."""

    logprob_layouts: Sequence[str]
    computes_own_kl: bool
    vocabulary: Vocabulary | None

    @classmethod
    def load_model(cls, model_config: Any, path: str) -> Any: ...

    @classmethod
    def load_processor(cls, path: str, trust_remote_code: bool = False) -> Any: ...

    def encode_prompts(self, samples: Sequence[Sample]) -> list[PromptEncoding]: ...

    # `batch` is an `mmpost.experience.RolloutBatch` (a string annotation: experience imports this module).
    def logprobs(self, model: Any, batch: "RolloutBatch", rows: Any, *, temperature: float, layout: str = "padded",
                 token_budget: int | None = None, full_distribution: bool = False) -> tuple[Any, Any]:
        """[n, K] log-probs of `rows` (tokens, denoising steps) and a kind-specific extra (or None)."""


POLICY_KIND_MEMBERS = ("logprob_layouts", "computes_own_kl", "vocabulary", "load_model", "load_processor",
                       "encode_prompts", "logprobs")


class MediaError(ValueError):
    """A media file that is missing, corrupt or of the wrong shape; the message names the file."""


class MediaRoot(os.PathLike):
    """Where a row's media paths are read from, and where they may lie.

    `base` is the folder relative paths start from (the data file's folder); every path must resolve (lexically:
    `..` collapsed, symlinks placed inside the folder by the data's owner are followed) to a file under `allowed`,
    or anywhere when `allowed` is None (`data.allow_media_outside_root=true`). A plain path given as a root means
    base = allowed = that folder. It is an `os.PathLike` of `base`, so adapters that join paths keep working.
    """

    def __init__(self, base: str | os.PathLike, allowed: str | os.PathLike | None) -> None:
        self.base = os.fspath(base)
        self.allowed = None if allowed is None else os.fspath(allowed)

    def __fspath__(self) -> str:
        return self.base

    def __repr__(self) -> str:
        return f"MediaRoot(base={self.base!r}, allowed={self.allowed!r})"


def media_root(row: Sample, data_config: Any) -> MediaRoot | None:
    """The media root of a dataset row from `data.media_root` / `data.allow_media_outside_root`; None for rows that
    do not come from a data file (synthetic tasks build their own media)."""
    base = row.get("_root")
    if base is None:
        return None
    if data_config.allow_media_outside_root:
        return MediaRoot(base, None)
    return MediaRoot(base, data_config.media_root or base)


class DataError(ValueError):
    """A dataset row or file that cannot be used; the message names the file/row and the field."""
