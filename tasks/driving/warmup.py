"""A tiny Qwen2.5-VL warm-started on driving_waypoints (zoo "tiny-qwen2.5-vl-driving"), so the driving GRPO
recipe starts from a model that writes six waypoints in the answer format (`mmpost.warmstart`)."""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

# Held-out (64 scenes) greedy trajectory reward / pass@1 and pass@8 at T 1 by SFT length, one 1200-step run of this
# recipe measured every 200 steps: 200: 0.128 / 0.015, 0.083 (below driving straight at the given speed, 0.173);
# 400: 0.343 / 0.128, 0.368; 600: 0.480 / 0.252, 0.530; 800: 0.489 / 0.342, 0.613; 1000: 0.573 / 0.374, 0.672;
# 1200: 0.566 / 0.381, 0.649. 1000 steps: the plateau, still far from the 0.8 ceiling, no flat group at T 1.
WARMUP_STEPS = 1000
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-driving")
def build_warm_driving_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="driving_waypoints", seed=seed, steps=steps, lr=lr)


# A cached folder built by another version (other steps, lr or base model) is rebuilt (mmpost.model.ensure_model_folder).
build_warm_driving_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}:v2"
