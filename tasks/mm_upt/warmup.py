"""A tiny Qwen2.5-VL warm-started on labelled digit sums (zoo "tiny-qwen2.5-vl-mmupt"), standing in for the
pretrained model MM-UPT starts from: it answers in `\\boxed{}` and is sometimes right, so the majority vote
has something to reinforce. Same pattern as tasks/shapes/warmup.py; the SFT is short on purpose, leaving
held-out accuracy well below the ceiling. The labels are used here only; MM-UPT itself never sees them.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mmpost.config import config_from_dict
from mmpost.registry import MODEL_ZOO

WARMUP_STEPS = 250
WARMUP_LR = 1e-3


def sft_warm_start(out_dir, *, base_zoo: str, task: str, task_args: dict, seed: int, steps: int, lr: float,
                   prompts_per_step: int = 16, modality_args: dict | None = None) -> Path:
    """Build `base_zoo` with `seed`, SFT it on `task(**task_args)` for `steps` steps, copy the final model to `out_dir`."""
    from mmpost.trainer import train

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-warmup-") as scratch:
        base = Path(scratch) / "base"
        MODEL_ZOO.get(base_zoo)(base, seed=seed)
        config = config_from_dict({
            "model": {"path": str(base)},
            "data": {"task": task, "task_args": {"seed": seed, **task_args}, "modality_args": modality_args or {},
                     "prompts_per_step": prompts_per_step},
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


@MODEL_ZOO.register("tiny-qwen2.5-vl-mmupt")
def build_warm_mmupt_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="digit_sum", task_args={"train_labels": True},
                          seed=seed, steps=steps, lr=lr)
