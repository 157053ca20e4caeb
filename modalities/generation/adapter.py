"""The generation modality: a sample's conditioning (class id, action ids, context frames) is the whole prompt.

Samples carry `conditioning`: {name: numbers} (e.g. {"class_labels": 2}); tasks that build conditioning from
other fields define `conditioning(sample) -> dict[str, Tensor]`, which `DenoisingPolicy` prefers. There is no
media to load, so `decode` only checks the field and records the tensors under `decoded["conditioning"]`.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from mmpost.registry import MODALITIES
from mmpost.types import DataError, Message, PromptEncoding, Sample

from .processing import conditioning_tensors


def _where(sample: Sample) -> str:
    return f"sample {sample.get('id', '?')!r}"


@MODALITIES.register("generation")
class GenerationModality:
    """Conditioning-only inputs for generators; the prompt encoding is a 1-token dummy plus the tensors (row dim 1)."""

    name = "generation"

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        decoded = dict(sample.get("decoded") or {})
        if "conditioning" in sample:
            decoded["conditioning"] = conditioning_tensors(sample["conditioning"], _where(sample))
        return {**sample, "decoded": decoded}

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        if "conditioning" not in sample:
            raise DataError(f"{_where(sample)}: a generation sample needs 'conditioning' (name -> numbers), or a task "
                            "that defines conditioning(sample)")
        tensors = conditioning_tensors(sample["conditioning"], _where(sample))
        return PromptEncoding(input_ids=torch.zeros(1, dtype=torch.long),
                              media={name: value.unsqueeze(0) for name, value in tensors.items()},
                              text=str(sample.get("problem", "")))
