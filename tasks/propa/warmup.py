"""A tiny Qwen2.5-VL warm-started by step-format SFT on the digits task (PROPA starts from an SFT checkpoint).

The CPU presets use short prompts (no system turn, bare questions: `system_prompt: ""`,
`question_style: short`), so the warm start uses them too. The zoo entry builds `tiny-qwen2.5-vl` and trains it with the engine's "step_sft" source (one row per
reference step), then saves a plain model folder. The warm-up is short on purpose: the model solves some
questions, so search finds correct and incorrect branches and there is room to improve.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mmpost.config import config_from_dict
from mmpost.registry import MODEL_ZOO

WARMUP_STEPS = 150
WARMUP_LR = 1e-3
STEP_MAX_NEW_TOKENS = 28


def warmup_config(base: str | Path, output_dir: str | Path, *, seed: int, steps: int, lr: float, prompts_per_step: int = 16,
                  task_args: dict | None = None) -> dict:
    return {
        "model": {"path": str(base)},
        "data": {"task": "propa_digits", "task_args": {"seed": seed, "question_style": "short", **(task_args or {})}, "prompts_per_step": prompts_per_step},
        "rollout": {"max_new_tokens": STEP_MAX_NEW_TOKENS},
        "algorithm": {"source": "step_sft", "source_args": {"system_prompt": ""}, "micro_batch_size": 32},
        "optim": {"lr": lr},
        "train": {"steps": steps, "seed": seed, "output_dir": str(output_dir), "progress": False},
        "eval": {"heldout": False},
    }


@MODEL_ZOO.register("tiny-qwen2.5-vl-propa")
def build_warm_tiny_qwen2_5_vl_propa(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                                     task_args: dict | None = None) -> Path:
    from mmpost.trainer import train

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-propa-warmup-") as scratch:
        base = Path(scratch) / "base"
        MODEL_ZOO.get("tiny-qwen2.5-vl")(base, seed=seed)
        summary = train(config_from_dict(warmup_config(base, Path(scratch) / "run", seed=seed, steps=steps, lr=lr,
                                                       task_args=task_args)))
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(summary["checkpoint"]) / "model", out)
    return out
