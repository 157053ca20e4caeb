"""A tiny Qwen2-Audio warm-started on audio_mcq (zoo "tiny-qwen2-audio-mcq"), so R1-AQA's GRPO starts from a model
that answers `<answer>option</answer>` and is sometimes right (a random model never writes the tag, so every
reward is 0 and GRPO has no signal). Same pattern as tasks/shapes/warmup.py: build the tiny model, a short SFT
through the engine (`mmpost.warmstart`), save the final model; short on purpose, leaving room for RL to show learning.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 120
WARMUP_LR = 1e-3
# The tiny model's feature window: every audio_mcq clip is at most 1.4 s, and the encoder runs over the whole window
# (Qwen2-Audio pads to 30 s), so a 4 s window gives the same audio tokens at a twentieth of the encoder's cost
# (a forward of 8 prompts: 1.81 s -> 0.09 s on one core). Real checkpoints keep their 30 s window.
WINDOW_SECONDS = 4


@MODEL_ZOO.register("tiny-qwen2-audio-mcq")
def build_warm_audio_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                           cache_dir: str | None = None, window_seconds: int = WINDOW_SECONDS,
                           encoder_positions: str = "whisper") -> Path:
    task_args = {"cache_dir": cache_dir} if cache_dir else {}
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2-audio", task="audio_mcq", task_args=task_args, seed=seed,
                          steps=steps, lr=lr, prompts_per_step=8, base_args={"window_seconds": window_seconds, "encoder_positions": encoder_positions})
