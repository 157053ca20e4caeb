"""Is the GUI warm start (`tiny-qwen2.5-vl-gui`) on an SFT plateau? Results: benchmarks/results/warmstart_gui.md.

    python benchmarks/warmstart_gui_curve.py sft [STEPS] [--every 200]      # the warm-start SFT, checkpoints + greedy
    python benchmarks/warmstart_gui_curve.py sample STEP [STEP ...]         # sampled / pass@8 at T 1 of checkpoints
    python benchmarks/warmstart_gui_curve.py sft 1200 --train-size 8192 --run run_train8192   # on more screens

`sft` runs the zoo entry's own recipe (tasks/gui_click/warmup.py: `tiny-qwen2.5-vl` seed 0, 16 prompts per step,
lr 1e-3, resolution prompt) with greedy held-out click accuracy and a checkpoint every `--every` steps. `sample`
scores a checkpoint exactly as the learning benchmark scores a warm start: one GuirlVG run (recipes/guirlvg.yaml)
at lr 0 whose "before" held-out numbers are greedy accuracy, sampled accuracy and pass@8 at T 1 (64 held-out screens).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "runs" / "warmstart_gui_curve"


def part_sft(args) -> None:
    import torch

    from mmpost.config import config_from_dict
    from mmpost.registry import MODEL_ZOO
    from mmpost.trainer import train
    from mmpost.tasks.gui_click.warmup import WARMUP_LR

    torch.set_num_threads(1)
    base = OUT / "base"
    task_args = {"seed": 0, **({"train_size": args.train_size} if args.train_size else {})}
    MODEL_ZOO.get("tiny-qwen2.5-vl")(base, seed=0)
    raw = {"model": {"path": str(base)},
           "data": {"task": "gui_click", "task_args": task_args, "modality_args": {"resolution_prompt": True},
                    "prompts_per_step": 16},
           "algorithm": {"source": "sft", "source_args": {}}, "optim": {"lr": WARMUP_LR},
           "train": {"steps": args.steps, "seed": 0, "output_dir": str(OUT / args.run), "progress": False,
                     "save_every": args.every, "keep_checkpoints": 0,
                     **({"resume": "auto"} if args.resume else {})},
           "eval": {"heldout": True, "every_n_steps": args.every, "pass_k": 0, "diagnostics_every": 0,
                    "kl_to_start": False, "max_new_tokens": 16}}
    started = time.time()
    train(config_from_dict(raw))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"wall {time.time() - started:.0f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s")


def part_sample(args) -> None:
    rows = {}
    for step in args.steps:
        found = [OUT / args.run / "checkpoints" / f"step_{step}" / "model"]
        if not found[0].is_dir():
            raise SystemExit(f"no checkpoint for step {step}: {found[0]} is missing")
        out = OUT / f"sample_{step}"
        shutil.rmtree(out, ignore_errors=True)
        command = [str(Path(sys.executable).parent / "mmpost"), "train", "recipes/guirlvg.yaml", f"model.path={found[0]}",
                   "model.zoo=null", "optim.lr=0", "train.steps=1", "train.threads=1", f"train.output_dir={out}",
                   "train.progress=false", "eval.pass_k=8"]
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((out / "summary.json").read_text())
        rows[step] = {k: v for k, v in summary.items() if k.startswith("heldout_") and k.endswith("_before")}
        print(step, json.dumps(rows[step]), flush=True)
    (OUT / f"sample_{'_'.join(map(str, args.steps))}.json").write_text(json.dumps(rows, indent=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    sft = sub.add_parser("sft")
    sft.add_argument("steps", nargs="?", type=int, default=1400)
    sft.add_argument("--every", type=int, default=200)
    sft.add_argument("--train-size", type=int, default=0, help="training screens (default: the task's 512)")
    sft.add_argument("--run", default="run", help="the run folder under runs/warmstart_gui_curve")
    sft.add_argument("--resume", action="store_true", help="continue the run folder's latest checkpoint to STEPS")
    sample = sub.add_parser("sample")
    sample.add_argument("steps", nargs="+", type=int)
    sample.add_argument("--run", default="run", help="the sft run folder under runs/warmstart_gui_curve")
    args = parser.parse_args(argv)
    {"sft": part_sft, "sample": part_sample}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
