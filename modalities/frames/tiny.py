"""A tiny autoregressive world model over frame tokens (zoo "tiny-ar-world-model"): a randomly initialised
`LlamaForCausalLM` built from a config plus a local word-level tokenizer, saved in the Hugging Face layout so
`AutoTokenizer`/`AutoProcessor` and `AutoModelForCausalLM` load it as they would a hub checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from mmpost.modalities.frames.processing import BOS, EOS, PAD, SPECIAL_TOKENS, UNK, FrameVocabulary
from mmpost.registry import MODEL_ZOO

# 0.02 (the hub default) at hidden 64 trains slowly from scratch; about 1/sqrt(hidden) learns the copy-with-shift
# structure of next frames within a few hundred SFT steps (same finding as the tiny Qwen2.5-VL's initializer).
TINY_INITIALIZER_RANGE = 0.1


def build_frame_tokenizer(vocabulary: FrameVocabulary = FrameVocabulary()):
    """A `PreTrainedTokenizerFast` over `vocabulary.tokens()`: whitespace-separated token names, one id each.

    With `add_special_tokens=False` the text "<p0> <p1> <frame_2>" encodes to exactly those three ids, and
    decoding joins names with spaces, so text and ids round-trip.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokens = vocabulary.tokens()
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                   model_max_length=4096)


def tiny_world_model_config(vocab_size: int, tokenizer, *, hidden: int = 64, layers: int = 4, heads: int = 4):
    from transformers import LlamaConfig

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
        initializer_range=TINY_INITIALIZER_RANGE, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


@MODEL_ZOO.register("tiny-ar-world-model")
def build_tiny_ar_world_model(out_dir: str | os.PathLike, *, seed: int = 0, levels: int = 2, max_frames: int = 8,
                              hidden: int = 64, layers: int = 4, heads: int = 4) -> Path:
    """Save a random-init tiny Llama world model (~{hidden=64, layers=4}: about 150k parameters) and its tokenizer."""
    from transformers import GenerationConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_frame_tokenizer(FrameVocabulary(levels=levels, max_frames=max_frames))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_world_model_config(len(tokenizer), tokenizer, hidden=hidden, layers=layers, heads=heads))
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


__all__ = ["SPECIAL_TOKENS", "build_frame_tokenizer", "build_tiny_ar_world_model", "tiny_world_model_config"]
