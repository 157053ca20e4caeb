"""A tiny Qwen2.5-VL warm-started on labelled digit sums (zoo "tiny-qwen2.5-vl-mmupt"), standing in for the
pretrained model MM-UPT starts from: it answers in `\\boxed{}` and is often right (held-out accuracy about 0.7
after 250 steps), so the majority vote has something to reinforce. The labels are used here only; MM-UPT itself
never sees them. Same pattern as tasks/shapes/warmup.py (`mmpost.warmstart.sft_warm_start`).
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 250
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-mmupt")
def build_warm_mmupt_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="digit_sum", task_args={"train_labels": True},
                          seed=seed, steps=steps, lr=lr)


# A cached folder built by another version (other steps, lr or base model) is rebuilt (mmpost.model.ensure_model_folder).
build_warm_mmupt_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}"
