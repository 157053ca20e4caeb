"""The AR world model pre-trained by SFT inside the toolkit (zoo "tiny-ar-world-model-sft").

RLIR post-trains world models that were first pre-trained on ground-truth video; here the tiny Llama of
`tiny-ar-world-model` gets a short SFT (the engine's `sft` source through `mmpost.warmstart.sft_warm_start`) on
the "world_model" split, disjoint from the IDMs' and the RL/held-out conditioning. It is deliberately
under-trained so RL has room: 200 steps reach held-out IDM-exact 0.54 (100 steps: 0.28, which RL could not lift;
300 steps: 0.90); see recipes/rlir_ar.md.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import MODEL_ZOO
from mmpost.warmstart import sft_warm_start

WARMUP_STEPS = 200
WARMUP_LR = 3e-3
WARMUP_FRAMES = 3


@MODEL_ZOO.register("tiny-ar-world-model-sft")
def build_sft_world_model(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                          frames: int = WARMUP_FRAMES) -> Path:
    return sft_warm_start(out_dir, base_zoo="tiny-ar-world-model", task="rlir_ar", seed=seed, steps=steps, lr=lr,
                          task_args={"train_split": "world_model", "train_size": 2048, "frames": frames},
                          prompts_per_step=16, extra={"rollout": {"max_new_tokens": frames * 65 + 1},
                                                      "train": {"threads": 1}})
