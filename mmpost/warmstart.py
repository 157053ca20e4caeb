"""Warm starts: a zoo model given a short SFT on a task through the engine, saved as a plain model folder.

RL from a randomly initialised tiny model has no signal (it never succeeds); each task's warm-start zoo entry
calls `sft_warm_start` so recipes start from a model that sometimes does.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from mmpost.config import config_from_dict
from mmpost.registry import MODEL_ZOO


def sft_warm_start(out_dir, *, base_zoo: str, task: str, seed: int, steps: int, lr: float, task_args: dict | None = None,
                   modality_args: dict | None = None, prompts_per_step: int = 16, source: str = "sft",
                   source_args: dict | None = None, extra: dict[str, Any] | None = None,
                   base_args: dict[str, Any] | None = None) -> Path:
    """Build `base_zoo` with `seed` (and the builder options `base_args`), train `steps` SFT steps on `task`, copy
    the final model to `out_dir`.

    `extra` merges further config sections (e.g. {"rollout": {"max_new_tokens": 28}}).
    """
    from mmpost.trainer import train

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-warmup-") as scratch:
        base = Path(scratch) / "base"
        MODEL_ZOO.get(base_zoo)(base, seed=seed, **(base_args or {}))
        raw: dict[str, Any] = {
            "model": {"path": str(base)},
            "data": {"task": task, "task_args": {"seed": seed, **(task_args or {})}, "modality_args": modality_args or {},
                     "prompts_per_step": prompts_per_step},
            "algorithm": {"source": source, "source_args": source_args or {}},
            "optim": {"lr": lr},
            "train": {"steps": steps, "seed": seed, "output_dir": str(Path(scratch) / "run"), "progress": False},
            "eval": {"heldout": False},
        }
        for section, values in (extra or {}).items():
            raw.setdefault(section, {}).update(values)
        summary = train(config_from_dict(raw))
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(summary["checkpoint"]) / "model", out)
    return out
