"""A tiny Qwen2.5-VL warm-started on the shapes task, so RL starts from a model that sometimes succeeds.

A randomly initialised ~200k-parameter model answers nothing; RL with a zero success rate has no signal.
This zoo entry builds `tiny-qwen2.5-vl` and runs a short SFT on the shapes train split through the same
engine (`algorithm.source: sft`), then saves the result as a plain model folder. The SFT is deliberately
short: held-out accuracy lands well below the ceiling, leaving room for the RL recipes to show learning.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mmpost.config import config_from_dict
from mmpost.registry import MODEL_ZOO

WARMUP_STEPS = 200
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-shapes")
def build_warm_tiny_qwen2_5_vl(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                               kinds: list[str] | None = None) -> Path:
    from mmpost.trainer import train

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-warmup-") as scratch:
        base = Path(scratch) / "base"
        MODEL_ZOO.get("tiny-qwen2.5-vl")(base, seed=seed)
        config = config_from_dict({
            "model": {"path": str(base)},
            "data": {"task": "shapes", "task_args": {"seed": seed, **({"kinds": kinds} if kinds else {})}, "prompts_per_step": 16},
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
