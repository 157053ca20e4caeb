"""A tiny Qwen2.5-VL warm-started on gui_click (zoo "tiny-qwen2.5-vl-gui"), so GuirlVG's RL starts from a
model that answers in the `<answer>(x, y)</answer>` format and sometimes clicks inside the box.

Same pattern as the shapes warm-up: build `tiny-qwen2.5-vl`, run a short SFT through the engine, save the model.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mmpost.config import config_from_dict
from mmpost.registry import MODEL_ZOO

WARMUP_STEPS = 120
WARMUP_LR = 2e-3


def warm_start(out_dir, *, task: str, seed: int, steps: int, lr: float, modality_args: dict | None = None) -> Path:
    """Build `tiny-qwen2.5-vl`, SFT it on `task` for `steps` steps, copy the final model to `out_dir`."""
    from mmpost.trainer import train

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-warmup-") as scratch:
        base = Path(scratch) / "base"
        MODEL_ZOO.get("tiny-qwen2.5-vl")(base, seed=seed)
        config = config_from_dict({
            "model": {"path": str(base)},
            "data": {"task": task, "task_args": {"seed": seed}, "modality_args": modality_args or {}, "prompts_per_step": 16},
            "algorithm": {"source": "sft"},
            "optim": {"lr": lr},
            "train": {"steps": steps, "seed": seed, "output_dir": str(Path(scratch) / "run"), "progress": False},
            "eval": {"heldout": False},
        })
        summary = train(config)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(summary["checkpoint"]) / "model", out)
    return out


@MODEL_ZOO.register("tiny-qwen2.5-vl-gui")
def build_warm_gui_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return warm_start(out_dir, task="gui_click", seed=seed, steps=steps, lr=lr, modality_args={"resolution_prompt": True})
