"""The records that flow through the engine, shared by every policy kind.

Advantages and losses see `[N, T]` tensors of log-probs and masks; T counts tokens for token policies,
denoising steps for denoising policies, and actions for acting policies.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
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


@runtime_checkable
class PolicyKind(Protocol):
    """What the engine asks of a policy kind (`model.policy`: token, denoising, a plugin's), and nothing more: the
    registry checks these members when a kind registers, so the engine reads them instead of probing with hasattr.

    A kind declares its capabilities as values: `logprob_layouts` (how its log-prob passes may lay rows out; the
    first is used when it has one) and `computes_own_kl` (True: its `kl_terms` gives the KL term, as Flow-GRPO's
    KL between step means; False: the KL comes from reference log-probs of its rows)."""

    logprob_layouts: Sequence[str]
    computes_own_kl: bool
    pad_token_id: int
    eos_token_ids: Sequence[int]
    suppressed_token_ids: Sequence[int]

    @classmethod
    def load_model(cls, model_config: Any, path: str) -> Any: ...

    @classmethod
    def load_processor(cls, path: str, trust_remote_code: bool = False) -> Any: ...

    def encode_prompts(self, samples: Sequence[Sample]) -> list[PromptEncoding]: ...

    def logprobs(self, model: Any, batch: RolloutBatch, rows: Any, *, temperature: float, layout: str = "padded",
                 token_budget: int | None = None, full_distribution: bool = False) -> tuple[Any, Any]:
        """[n, K] log-probs of `rows` (tokens, denoising steps) and a kind-specific extra (or None)."""


POLICY_KIND_MEMBERS = ("logprob_layouts", "computes_own_kl", "pad_token_id", "eos_token_ids", "suppressed_token_ids",
                       "load_model", "load_processor", "encode_prompts", "logprobs")


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


class RowKind(str, Enum):
    """Where a row of a step came from, which decides how the step treats it: the policy's own rollout, a ground-truth
    label scored as a rollout (ViSurf), or an expert demonstration (SFT rows, CHORD, HPT). A `str` enum, so a plugin
    comparing with "policy" keeps working."""

    POLICY = "policy"
    LABEL = "label"
    EXPERT = "expert"

    def __str__(self) -> str:
        return self.value


class DataError(ValueError):
    """A dataset row or file that cannot be used; the message names the file/row and the field."""


@dataclass
class RolloutBatch:
    """Trajectories of one step, rows grouped by `group_ids` (one group per prompt / initial state).

    Token policies: `completion_ids` [N, T] right-padded, `completion_mask` [N, T] (1 up to and including
    the first EOS). `prompt_index[i]` points into `prompts`/`samples` so G rows share one encoding.
    """

    prompts: list[PromptEncoding]
    samples: list[Sample]
    prompt_index: torch.Tensor  # [N] long
    group_ids: torch.Tensor  # [N] long
    completion_ids: torch.Tensor  # [N, T] long
    completion_mask: torch.Tensor  # [N, T] float
    sources: list[RowKind]  # where each row came from (`RowKind`; `rows_of` gives a mask)
    is_sft: torch.Tensor  # [N] bool: trained with the SFT loss instead of the policy-gradient loss
    completions: list[Any] = field(default_factory=list)  # decoded text, or the backend's outputs (e.g. images)
    rewards: torch.Tensor | None = None  # [N]
    reward_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [N], NaN = not applicable
    advantages: torch.Tensor | None = None  # [N] (or [N, T] for per-token advantages)
    old_logprobs: torch.Tensor | None = None  # [N, T]
    ref_logprobs: torch.Tensor | None = None  # [N, T]
    sampling_logprobs: torch.Tensor | None = None  # [N, T], from the rollout engine when it reports them
    keep: torch.Tensor | None = None  # [N] bool, rows that enter the update (zero-variance groups dropped)
    # Rows of one environment episode share a reward and an advantage; None = every row is its own episode.
    episode_ids: torch.Tensor | None = None  # [N] long
    # Per-row tensors a policy kind needs to re-score its rows (denoising: latents [N, K+1, ...], sigmas [N, K+1]).
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.group_ids.numel())

    def rows_of(self, kind: RowKind) -> torch.Tensor:
        """[N] bool: the rows that came from `kind`."""
        return torch.tensor([source == kind for source in self.sources], dtype=torch.bool)

    def select(self, rows: torch.Tensor | Sequence[int]) -> "RolloutBatch":
        """A new batch with only `rows` (shared prompt encodings are kept, indices unchanged)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        def pick(t):
            return None if t is None else t[rows]
        return RolloutBatch(
            prompts=self.prompts,
            samples=self.samples,
            prompt_index=self.prompt_index[rows],
            group_ids=self.group_ids[rows],
            completion_ids=self.completion_ids[rows],
            completion_mask=self.completion_mask[rows],
            sources=[self.sources[i] for i in rows.tolist()],
            is_sft=self.is_sft[rows],
            completions=[self.completions[i] for i in rows.tolist()] if self.completions else [],
            rewards=pick(self.rewards),
            reward_parts={k: v[rows] for k, v in self.reward_parts.items()},
            advantages=pick(self.advantages),
            old_logprobs=pick(self.old_logprobs),
            ref_logprobs=pick(self.ref_logprobs),
            sampling_logprobs=pick(self.sampling_logprobs),
            keep=pick(self.keep),
            episode_ids=pick(self.episode_ids),
            aux={k: v[rows] for k, v in self.aux.items()},
        )
