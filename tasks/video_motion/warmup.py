"""A tiny Qwen2.5-VL warm-started on video_motion (zoo "tiny-qwen2.5-vl-video"), so GRPO on video starts from a model
that answers in the `<answer>direction</answer>` format and is sometimes right. Same pattern as the shapes warm start
(`mmpost.warmstart.sft_warm_start`): build the tiny model, a short SFT on the train clips, save the model."""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 300
WARMUP_LR = 1e-3
TRAIN_CLIPS = 1024  # more distinct clips than the warm start sees twice, so it learns motion, not clips


@MODEL_ZOO.register("tiny-qwen2.5-vl-video")
def build_warm_video_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="video_motion", seed=seed, steps=steps, lr=lr,
                          task_args={"train_size": TRAIN_CLIPS})


build_warm_video_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}:{TRAIN_CLIPS}"
