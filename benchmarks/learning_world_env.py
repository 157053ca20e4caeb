"""World-Env learning check: ground-truth success before/after GRPO, trained in the world model vs directly in the
ground-truth env (the reference), over several seeds. Prints a table and writes JSON under benchmarks/results/.

    python benchmarks/learning_world_env.py                   # 3 seeds x 2 settings, recipes/world_env.yaml
    python benchmarks/learning_world_env.py --steps 4 --seeds 0   # a quick look

Both settings start from the same SFT-warm-started VLA (zoo "tiny-vla-world-env", 5 demonstrations per task) and
use the same frozen world model and reflector artifacts (built on first use); only the RL seed and the environment
differ. Success is always measured in the ground-truth env, on the task's held-out starts, greedy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "world_env.yaml"
SETTINGS = {"world_model": "world_env_world_model", "ground_truth": "world_env_ground_truth"}


def run_one(setting: str, seed: int, steps: int, heldout: int, threads: int, output: Path) -> dict:
    from mmpost.config import load_config
    from mmpost.trainer import train

    overrides = [f"algorithm.source_args.env={SETTINGS[setting]}", f"train.seed={seed}", f"train.steps={steps}",
                 f"train.output_dir={output / f'{setting}-seed{seed}'}", "train.progress=false", f"train.threads={threads}",
                 "eval.every_n_steps=0", f"data.task_args.heldout_size={heldout}",
                 f"model.path={REPO / 'artifacts' / 'tiny-vla-world-env'}"]
    if setting == "ground_truth":
        overrides.append("algorithm.source_args.env_args={}")
    started = time.perf_counter()
    summary = train(load_config(RECIPE, overrides))
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    return {"setting": setting, "seed": seed, "steps": steps, "before": summary["heldout_accuracy_before"],
            "after": summary["heldout_accuracy_after"], "seconds": time.perf_counter() - started,
            "train_success_first": records[0].get("env/success_rate"), "train_success_last": records[-1].get("env/success_rate"),
            "zero_variance_fraction": statistics.mean(r.get("rollout/zero_variance_fraction", 0.0) for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--heldout", type=int, default=32, help="ground-truth evaluation episodes (held-out starts)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "learning_world_env.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = REPO / "runs" / "learning_world_env"
    rows = [run_one(s, seed, args.steps, args.heldout, args.threads, output) for s in args.settings for seed in args.seeds]
    print(f"\nGround-truth success (held-out starts, greedy, {args.heldout} episodes), {args.steps} GRPO steps")
    print(f"{'trained in':<14}{'seed':>5}{'before':>9}{'after':>8}{'train succ. first->last':>26}{'s':>7}")
    for r in rows:
        print(f"{r['setting']:<14}{r['seed']:>5}{r['before']:>9.3f}{r['after']:>8.3f}"
              f"{r['train_success_first']:>14.3f} -> {r['train_success_last']:.3f}{r['seconds']:>9.0f}")
    summary = {}
    for setting in args.settings:
        mine = [r for r in rows if r["setting"] == setting]
        deltas = [r["after"] - r["before"] for r in mine]
        summary[setting] = {"before_mean": statistics.mean(r["before"] for r in mine),
                            "after_mean": statistics.mean(r["after"] for r in mine),
                            "delta_mean": statistics.mean(deltas),
                            "delta_std": statistics.stdev(deltas) if len(deltas) > 1 else 0.0}
        s = summary[setting]
        print(f"{setting:<14} mean {s['before_mean']:.3f} -> {s['after_mean']:.3f} (delta {s['delta_mean']:+.3f} ± {s['delta_std']:.3f})")
    for name in ("world-env-reach-wm/world_env_wm.json", "world-env-reflector/world_env_reflector.json"):
        path = REPO / "artifacts" / name
        if path.is_file():
            summary[name.split("/")[0]] = json.loads(path.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "summary": summary, "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
