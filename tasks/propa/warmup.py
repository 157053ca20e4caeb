"""A tiny Qwen2.5-VL warm-started by step-format SFT on the digits task (PROPA starts from an SFT checkpoint).

The CPU presets use short prompts (no system turn, bare questions: `system_prompt: ""`,
`question_style: short`), so the warm start uses them too. The zoo entry builds `tiny-qwen2.5-vl` and trains it with the engine's "step_sft" source (one row per
reference step), then saves a plain model folder.

The length was chosen from an SFT curve of this recipe (benchmarks/warmstart_propa_curve.py, results in
benchmarks/results/learning_propa_warmstart.md), scored on 64 unseen training-split questions (not the held-out set):
the earlier 150 steps sat early on a rising curve, not on a plateau (greedy 0.156, sampled 0.152 at T 1, and its
greedy first step never read the digits right). At 600 steps greedy is 0.359, sampled 0.320, pass@4 0.641 (the
largest pass@4 - greedy headroom of the curve, +0.281) and the digits are read right 47% of the time: far from
solved (greedy <= 0.8), and the search samples right steps often enough to find correct branches. The curve was
still rising at 600 (it was stopped at 4x the old length for time).
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 600
WARMUP_LR = 1e-3
STEP_MAX_NEW_TOKENS = 28
PROPA_ROPE_THETA = 1_000_000.0


@MODEL_ZOO.register("tiny-qwen2.5-vl-propa")
def build_warm_tiny_qwen2_5_vl_propa(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                                     task_args: dict | None = None) -> Path:
    # PROPA's numbers (README, recipes/propa.md) were measured on the hub's M-RoPE base; the tiny builder's new
    # default (10, better for position questions) is not re-measured for PROPA yet, so the warm start keeps 1e6.
    return sft_warm_start(out_dir, base_zoo="tiny-qwen2.5-vl", task="propa_digits", seed=seed, steps=steps, lr=lr,
                          base_args={"rope_theta": PROPA_ROPE_THETA},
                          task_args={"question_style": "short", **(task_args or {})}, source="step_sft",
                          source_args={"system_prompt": ""},
                          extra={"rollout": {"max_new_tokens": STEP_MAX_NEW_TOKENS}, "algorithm": {"micro_batch_size": 32}})


# A cached warm start built by another version (the earlier 150 steps) is rebuilt.
build_warm_tiny_qwen2_5_vl_propa.zoo_version = f"theta1e6:{WARMUP_STEPS}:{WARMUP_LR}"
