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


@MODEL_ZOO.register("tiny-qwen2-audio-mcq")
def build_warm_audio_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                           cache_dir: str | None = None) -> Path:
    task_args = {"cache_dir": cache_dir} if cache_dir else {}
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2-audio", task="audio_mcq", task_args=task_args, seed=seed,
                          steps=steps, lr=lr, prompts_per_step=8)
