"""A tiny VLA: the tiny Qwen2.5-VL whose tokenizer also holds 256 action tokens `<act_0>` … `<act_255>`.

Zoo entry "tiny-vla-qwen2.5-vl". The action tokens are added, non-special tokens (decoding with
skip_special_tokens keeps them, so rewards read them from the completion text); the embedding matrix grows to
the new vocabulary (new rows from the model's seeded initialiser), and it
loads through `AutoProcessor` / `AutoModelForImageTextToText` like any checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

from mmpost.registry import MODEL_ZOO

from .processing import DEFAULT_BINS, add_action_tokens


@MODEL_ZOO.register("tiny-vla-qwen2.5-vl")
def build_tiny_vla_qwen2_5_vl(out_dir: str | os.PathLike, *, seed: int = 0, n_bins: int = DEFAULT_BINS, **tiny_options) -> Path:
    """Build `tiny-qwen2.5-vl` in `out_dir`, add `n_bins` action tokens, resize the embeddings, save again."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = Path(MODEL_ZOO.get("tiny-qwen2.5-vl")(out_dir, seed=seed, **tiny_options))
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    add_action_tokens(processor.tokenizer, n_bins)
    # mean_resizing=False: the new rows come from the model's own (seeded) initialiser, deterministic per seed.
    import torch

    torch.manual_seed(seed)
    model.resize_token_embeddings(len(processor.tokenizer), mean_resizing=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
