"""A tiny Qwen2.5-VL warm-started on driving_waypoints (zoo "tiny-qwen2.5-vl-driving"), so the driving GRPO
recipe starts from a model that writes six waypoints in the answer format (`mmpost.warmstart`)."""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 200
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-driving")
def build_warm_driving_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="driving_waypoints", seed=seed, steps=steps, lr=lr)


# A cached folder built by another version (other steps, lr or base model) is rebuilt (mmpost.model.ensure_model_folder).
build_warm_driving_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}"
