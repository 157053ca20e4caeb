"""A tiny Qwen2.5-VL warm-started on gui_click (zoo "tiny-qwen2.5-vl-gui"), so GuirlVG's RL starts from a
model that answers in the `<answer>(x, y)</answer>` format and sometimes clicks inside the box.

Same pattern as the shapes warm-up: build `tiny-qwen2.5-vl`, run a short SFT through the engine, save the model.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 400
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-gui")
def build_warm_gui_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="gui_click", seed=seed, steps=steps, lr=lr,
                          modality_args={"resolution_prompt": True})


# A cached folder built by another version (other steps, lr or base model) is rebuilt (mmpost.model.ensure_model_folder).
build_warm_gui_model.zoo_version = f"theta10:{WARMUP_STEPS}:{WARMUP_LR}"
