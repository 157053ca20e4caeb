"""The MM-UPT warm start's SFT run (tasks/mm_upt/warmup.py: tiny-qwen2.5-vl, digit_sum with train labels, seed 0,
lr 1e-3, 16 prompts per step), kept every `--every` steps, to pick a warm start from measurements taken before any
MM-UPT run: benchmarks/mm_upt_diagnosis.py then scores each checkpoint on the training prompts (greedy, maj@k).

    python benchmarks/mm_upt_sft_curve.py --steps 350 --every 25 --out runs/s5/sft_curve

The run is the zoo builder's (`mmpost.warmstart.sft_warm_start`) with checkpoints kept: its step-225 weights equal the
cached warm start's (compare model.safetensors).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=350)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--task-args", default="", help="extra digit_sum options as YAML, e.g. '{high: 5}'")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import yaml

    from mmpost.config import config_from_dict
    from mmpost.registry import MODEL_ZOO
    from mmpost.tasks.mm_upt import warmup  # noqa: F401  (registers the zoo entries)
    from mmpost.trainer import train

    task_args = {"train_labels": True, **(yaml.safe_load(args.task_args) if args.task_args else {})}
    with tempfile.TemporaryDirectory(prefix="mmpost-sft-curve-") as scratch:
        base = Path(scratch) / "base"
        MODEL_ZOO.get("tiny-qwen2.5-vl")(base, seed=0)
        raw = {  # as sft_warm_start builds it (seed 0, lr 1e-3, 16 prompts per step), with checkpoints kept
            "model": {"path": str(base)},
            "data": {"task": "digit_sum", "task_args": {"seed": 0, **task_args}, "modality_args": {}, "prompts_per_step": 16},
            "algorithm": {"source": "sft", "source_args": {}},
            "optim": {"lr": warmup.WARMUP_LR},
            "train": {"steps": args.steps, "seed": 0, "output_dir": str(args.out), "progress": False,
                      "save_every": args.every, "keep_checkpoints": 0},
            "eval": {"heldout": False},
        }
        train(config_from_dict(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
