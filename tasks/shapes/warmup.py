"""A tiny Qwen2.5-VL warm-started on the shapes task, so RL starts from a model that sometimes succeeds.

A randomly initialised ~200k-parameter model answers nothing; RL with a zero success rate has no signal.
This zoo entry builds `tiny-qwen2.5-vl` and runs a short SFT on the shapes train split through the same
engine (`algorithm.source: sft`), then saves the result as a plain model folder. The SFT is deliberately
short: held-out accuracy lands well below the ceiling, leaving room for the RL recipes to show learning.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 200
WARMUP_LR = 1e-3


@MODEL_ZOO.register("tiny-qwen2.5-vl-shapes")
def build_warm_tiny_qwen2_5_vl(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                               kinds: list[str] | None = None) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="shapes", seed=seed, steps=steps, lr=lr,
                          task_args={"kinds": kinds} if kinds else None)


@MODEL_ZOO.register("tiny-qwen2.5-vl-shapes-vllm")
def build_warm_tiny_qwen2_5_vl_vllm(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                                    kinds: list[str] | None = None) -> Path:
    """The same warm start on `tiny-qwen2.5-vl-vllm` (head_dim 32), for `rollout.backend=vllm` on CPU."""
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl-vllm", task="shapes", seed=seed, steps=steps, lr=lr,
                          task_args={"kinds": kinds} if kinds else None)
