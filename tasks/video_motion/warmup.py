"""A tiny Qwen2.5-VL warm-started on video_motion (zoo "tiny-qwen2.5-vl-video"), so GRPO on video starts from a model
that answers in the `<answer>direction</answer>` format and is sometimes right. Same pattern as the shapes warm start
(`mmpost.warmstart.sft_warm_start`): build the tiny model, a short SFT on the train clips, save the model."""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

# SFT on this task learns the motion only after a long plateau: the answer token sits at ln 4 (a uniform guess among
# the four directions, held-out greedy 0.21-0.26, the answer format already right) until about step 1,000, then the
# model finds the position comparison within ~250 steps (held-out greedy 0.211 at step 1,000, 0.617 at 1,250; seed 0,
# benchmarks/warmstart_video_diagnosis.py, results in benchmarks/results/warmstart_video_diagnosis.md). The earlier
# 300-step warm start stopped on the plateau and answered at chance. 1,250 steps leave a model that sees motion but
# is far from solved (greedy <= 0.8), so GRPO has something to improve.
WARMUP_STEPS = 1250
WARMUP_LR = 1e-3
TRAIN_CLIPS = 1024  # more distinct clips than the warm start sees twice, so it learns motion, not clips


@MODEL_ZOO.register("tiny-qwen2.5-vl-video")
def build_warm_video_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="video_motion", seed=seed, steps=steps, lr=lr,
                          task_args={"train_size": TRAIN_CLIPS})


build_warm_video_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}:{TRAIN_CLIPS}"
