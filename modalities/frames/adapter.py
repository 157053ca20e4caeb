"""The frames modality: conditioning frames + an action sequence in, next frames as pixel tokens out.

Samples (what `mmpost.tasks.world_models` builds from ground-truth trajectories):
- `context_frames`: uint8 [C, H, W] (nested lists or an array), the frames the model starts from;
- `actions`: F action indices, the ground-truth actions the generated frames must follow;
- optionally `target_frames`: uint8 [F, H, W], the ground-truth next frames (SFT target, pixel metric).

`decode` checks and converts these (`decoded` gains the arrays, plus `frame_token_names`, the tokenizer's id ->
name table once a prompt was encoded, so rewards can read completion ids). `encode_prompt` builds the token
ids directly (no chat template: a world model has none).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from mmpost.modalities.frames.processing import FrameVocabulary, prompt_token_names
from mmpost.registry import MODALITIES
from mmpost.types import DataError, Message, PromptEncoding, Sample


def _sample_id(sample: Sample) -> str:
    return repr(sample.get("id", "?"))


def _frames_array(sample: Sample, field: str) -> np.ndarray:
    try:
        array = np.asarray(sample[field])
    except (TypeError, ValueError):
        raise DataError(f"sample {_sample_id(sample)}: '{field}' must be a [N, H, W] array of 0..255 values") from None
    if array.ndim != 3 or 0 in array.shape or array.dtype.kind not in "uif":
        raise DataError(f"sample {_sample_id(sample)}: '{field}' must be a non-empty [N, H, W] numeric array, got shape "
                        f"{array.shape} ({array.dtype})")
    if array.min() < 0 or array.max() > 255:
        raise DataError(f"sample {_sample_id(sample)}: '{field}' values must lie in 0..255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


@MODALITIES.register("frames")
class FramesModality:
    """Frame sequences for token world models; `encode_prompt` needs the frame tokenizer (`tiny.py`)."""

    name = "frames"

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        for field in ("context_frames", "actions"):
            if sample.get(field) is None:
                raise DataError(f"sample {_sample_id(sample)}: a frames sample needs '{field}'")
        context = _frames_array(sample, "context_frames")
        try:
            actions = np.asarray(sample["actions"], dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"sample {_sample_id(sample)}: 'actions' must be integers, got {sample['actions']!r:.80}") from None
        if actions.size == 0:
            raise DataError(f"sample {_sample_id(sample)}: 'actions' is empty")
        decoded: dict[str, Any] = dict(sample.get("decoded") or {})
        decoded.update(context_frames=context, actions=actions)
        if sample.get("target_frames") is not None:
            target = _frames_array(sample, "target_frames")
            if target.shape != (actions.size,) + context.shape[1:]:
                raise DataError(f"sample {_sample_id(sample)}: 'target_frames' must be [{actions.size}, "
                                f"{context.shape[1]}, {context.shape[2]}] (one frame per action), got {target.shape}")
            decoded["target_frames"] = target
        return {**sample, "decoded": decoded}

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """Token ids of `<s> [<ctx> P(c)]×C <a1_..>…<aF_..> <frame_1>` (see processing.py); `messages` are not used."""
        tokenizer = getattr(processor, "tokenizer", processor)
        if "context_frames" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample)["decoded"])
        decoded = sample["decoded"]
        vocab = tokenizer.get_vocab()
        vocabulary = FrameVocabulary.from_vocab(vocab)
        names = prompt_token_names(decoded["context_frames"], decoded["actions"].tolist(), vocabulary)
        if "frame_token_names" not in decoded:
            table = [""] * (max(vocab.values()) + 1)
            for token, index in vocab.items():
                table[index] = token
            decoded["frame_token_names"] = table
        ids = torch.tensor([vocab[n] for n in names], dtype=torch.long)
        return PromptEncoding(input_ids=ids, text=" ".join(names))
