"""A tiny, randomly initialised Qwen2-Audio saved in the Hugging Face layout, for tests and CPU recipes.

Real architecture (Whisper-style audio encoder with its two convolutions and average pooling, linear
projector, Qwen2 text decoder), real `Qwen2AudioProcessor` with a `WhisperFeatureExtractor`, and
Qwen2-Audio-Instruct's chat template; about 150k parameters. It loads through `AutoProcessor` and the
architecture class named in its config (`Qwen2AudioForConditionalGeneration`, which is what
`mmpost.model.load_model` falls back to), so every audio code path runs without weights.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from mmpost.modalities.image.tiny import TINY_INITIALIZER_RANGE
from mmpost.registry import MODEL_ZOO
from mmpost.tokenizer import build_tiny_tokenizer

# Qwen2-Audio-7B-Instruct's chat template, written out: a default system turn when the conversation has
# none, each turn as `<|im_start|>role\n...<|im_end|>\n`, and every audio part as
# `Audio k: <|audio_bos|><|AUDIO|><|audio_eos|>\n` (the processor then repeats `<|AUDIO|>` once per
# audio embedding). An audio part is a content item with type "audio" or an "audio"/"audio_url" key.
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# Qwen2-Audio's front end: 128 log-mel bins at 16 kHz, 10 ms hop, a 30 s window = 3000 frames, which the
# encoder's convolutions halve to 1500 positions (its max_source_positions).
QWEN2_AUDIO_SAMPLING_RATE = 16_000
QWEN2_AUDIO_MEL_BINS = 128
QWEN2_AUDIO_WINDOW_SECONDS = 30


def tiny_qwen2_audio_config(
    *,
    vocab_size: int,
    token_ids: dict[str, int],
    text_hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    audio_hidden: int = 32,
    audio_layers: int = 2,
    audio_heads: int = 2,
    mel_bins: int = QWEN2_AUDIO_MEL_BINS,
    window_seconds: int = QWEN2_AUDIO_WINDOW_SECONDS,
) -> Qwen2AudioConfig:
    """A Qwen2-Audio config with a tiny audio encoder and text decoder; `token_ids` maps token names to ids.

    The encoder's `max_source_positions` must equal the feature window in frames / 2 (100 frames per
    second, halved by the stride-2 convolution): 1500 for the real 30 s window.
    """
    if text_hidden % heads:
        raise ValueError(f"text_hidden ({text_hidden}) must be divisible by heads ({heads})")
    if audio_hidden % audio_heads:
        raise ValueError(f"audio_hidden ({audio_hidden}) must be divisible by audio_heads ({audio_heads})")
    frames = window_seconds * QWEN2_AUDIO_SAMPLING_RATE // 160
    audio_config = dict(
        model_type="qwen2_audio_encoder",
        num_mel_bins=mel_bins,
        encoder_layers=audio_layers,
        encoder_attention_heads=audio_heads,
        encoder_ffn_dim=2 * audio_hidden,
        d_model=audio_hidden,
        max_source_positions=frames // 2,
        # The hub's 0.02 is too small at these widths (see mmpost.modalities.image.tiny.TINY_INITIALIZER_RANGE).
        initializer_range=TINY_INITIALIZER_RANGE,
    )
    text_config = dict(
        model_type="qwen2",
        vocab_size=vocab_size,
        hidden_size=text_hidden,
        intermediate_size=2 * text_hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2 if heads % 2 == 0 else heads,
        max_position_embeddings=4096,
        initializer_range=TINY_INITIALIZER_RANGE,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        bos_token_id=None,  # Qwen prepends no BOS
        eos_token_id=token_ids["<|im_end|>"],
        pad_token_id=token_ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    return Qwen2AudioConfig(
        audio_config=audio_config,
        text_config=text_config,
        audio_token_index=token_ids["<|AUDIO|>"],
    )


def whisper_positions(model: Qwen2AudioForConditionalGeneration) -> None:
    """Give the audio encoder Whisper's sinusoidal position table, frozen, as every real Qwen2-Audio checkpoint has.

    Why: Qwen2-Audio's encoder is Whisper's, whose `embed_positions` are sinusoids (max timescale 10^4) that never
    train; transformers builds Qwen2AudioEncoder without Whisper's initialiser, so a model built from a config gets
    random N(0, initializer_range) rows instead. Measured on the tiny encoder (d_model 32): adjacent random rows have
    cosine -0.001 (no notion of "next to"), sinusoids 0.96, so "which tone came first" and "which is longer" had to
    be learned from unrelated codes.
    """
    from transformers.models.whisper.modeling_whisper import sinusoids

    table = model.model.audio_tower.embed_positions
    with torch.no_grad():
        table.weight.copy_(sinusoids(*table.weight.shape))
    table.requires_grad_(False)


@MODEL_ZOO.register("tiny-qwen2-audio")
def build_tiny_qwen2_audio(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    text_hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    audio_hidden: int = 32,
    audio_layers: int = 2,
    window_seconds: int = QWEN2_AUDIO_WINDOW_SECONDS,
    encoder_positions: str = "whisper",
) -> Path:
    """Build and save a tiny random Qwen2-Audio (model, tokenizer, processor, generation config) in `out_dir`.

    Load it with `AutoProcessor.from_pretrained(out_dir)` and
    `Qwen2AudioForConditionalGeneration.from_pretrained(out_dir)` (or `mmpost.model.load_model`). The
    feature extractor is Qwen2-Audio's (128 mel bins, 16 kHz, `window_seconds` = 30 s window). Same
    seed, same weights. `encoder_positions`: "whisper" (the real models' frozen sinusoids, see `whisper_positions`)
    or "random" (what a config-built Qwen2AudioEncoder gets; kept for the comparison in recipes/audio_grpo.md).
    """
    if encoder_positions not in ("whisper", "random"):
        raise ValueError(f"tiny-qwen2-audio: encoder_positions must be 'whisper' or 'random', got {encoder_positions!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = QWEN2_AUDIO_CHAT_TEMPLATE
    names = ["<|im_end|>", "<|endoftext|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    token_ids = {name: tokenizer.convert_tokens_to_ids(name) for name in names}
    config = tiny_qwen2_audio_config(
        vocab_size=len(tokenizer),
        token_ids=token_ids,
        text_hidden=text_hidden,
        layers=layers,
        heads=heads,
        audio_hidden=audio_hidden,
        audio_layers=audio_layers,
        window_seconds=window_seconds,
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config)
    if encoder_positions == "whisper":
        whisper_positions(model)
    model.generation_config = GenerationConfig(
        eos_token_id=token_ids["<|im_end|>"], pad_token_id=token_ids["<|endoftext|>"], bos_token_id=None
    )
    feature_extractor = WhisperFeatureExtractor(
        feature_size=QWEN2_AUDIO_MEL_BINS,
        sampling_rate=QWEN2_AUDIO_SAMPLING_RATE,
        hop_length=160,
        chunk_length=window_seconds,
        n_fft=400,
        return_attention_mask=True,
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=QWEN2_AUDIO_CHAT_TEMPLATE
    )
    model.save_pretrained(out)  # safetensors is the only format in transformers 5
    processor.save_pretrained(out)
    return out
