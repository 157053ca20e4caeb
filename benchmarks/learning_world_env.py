"""World-Env learning check: ground-truth success before/after GRPO, trained directly in the ground-truth env (the
cheap reference, run first) and in the world model with the reflector (World-Env), over several seeds. Prints a
table and writes JSON + Markdown under benchmarks/results/.

    python benchmarks/learning_world_env.py                          # 3 seeds x 2 settings (~12 min, 1 thread)
    python benchmarks/learning_world_env.py --settings ground_truth --gt-steps 40 --lr 1e-3 --temperature 1.0
    python benchmarks/learning_world_env.py --wm-steps 2 --seeds 0    # a quick look

Both settings start from the same SFT-warm-started VLA (zoo "tiny-vla-world-env", 5 demonstrations per task) and
use the same frozen world model and reflector artifacts (built on first use); only the RL seed and the environment
differ. Success is always measured in the ground-truth env, on the task's held-out starts, greedy. Everything not
given here comes from recipes/world_env.yaml (zero-variance groups dropped, relative rewards, KL 1e-3, G = 8).
The defaults (lr 3e-4, temperature 0.7) are the ground-truth sweep's setting whose sampled success rose most
(recipes/world_env.md has the sweep); the recipe itself keeps RLinf's temperature 1.6.
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
SETTINGS = {"ground_truth": "world_env_ground_truth", "world_model": "world_env_world_model"}


def run_one(setting: str, seed: int, steps: int, args: argparse.Namespace, output: Path) -> dict:
    from mmpost.config import load_config
    from mmpost.trainer import train

    overrides = [f"algorithm.source_args.env={SETTINGS[setting]}", f"train.seed={seed}", f"train.steps={steps}",
                 f"train.output_dir={output / f'{setting}-seed{seed}'}", "train.progress=false", f"train.threads={args.threads}",
                 "eval.every_n_steps=0", f"data.task_args.heldout_size={args.heldout}", f"optim.lr={args.lr}",
                 f"rollout.temperature={args.temperature}", f"model.path={REPO / 'artifacts' / 'tiny-vla-world-env'}"]
    if setting == "ground_truth":
        overrides.append("algorithm.source_args.env_args={}")
    started = time.perf_counter()
    summary = train(load_config(RECIPE, overrides))
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    half = max(1, len(records) // 4)

    def mean(key: str, rows: list[dict]) -> float:
        return statistics.mean(r.get(key, float("nan")) for r in rows)

    return {"setting": setting, "seed": seed, "steps": steps, "lr": args.lr, "temperature": args.temperature,
            "before": summary["heldout_accuracy_before"], "after": summary["heldout_accuracy_after"],
            "seconds": time.perf_counter() - started, "seconds_per_step": mean("perf/step_s", records),
            "rollout_seconds_per_step": mean("perf/rollout_s", records),
            # training episodes (sampled, in the env trained in): first vs last quarter of the steps
            "train_success_first": mean("env/success_rate", records[:half]), "train_success_last": mean("env/success_rate", records[-half:]),
            "train_return_first": mean("env/episode_return", records[:half]), "train_return_last": mean("env/episode_return", records[-half:]),
            "zero_variance_fraction": mean("rollout/zero_variance_fraction", records)}


def table(rows: list[dict], summary: dict, args: argparse.Namespace) -> str:
    lines = [f"Ground-truth success (held-out starts, greedy, {args.heldout} episodes); lr {args.lr}, temperature {args.temperature}",
             "", "| trained in | seed | steps | GT before | GT after | train success first→last quarter | train return first→last | s/step |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['seed']} | {r['steps']} | {r['before']:.3f} | {r['after']:.3f} | "
                     f"{r['train_success_first']:.3f} → {r['train_success_last']:.3f} | "
                     f"{r['train_return_first']:.3f} → {r['train_return_last']:.3f} | {r['seconds_per_step']:.1f} |")
    lines.append("")
    for setting, s in summary.items():
        if "before_mean" in s:
            lines.append(f"- {setting}: mean {s['before_mean']:.3f} → {s['after_mean']:.3f} "
                         f"(delta {s['delta_mean']:+.3f} ± {s['delta_std']:.3f} over {s['seeds']} seeds)")
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    parts = []
    for key, value in vars(args).items():
        if key != "out":
            parts.append(f"--{key.replace('_', '-')} " + (" ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gt-steps", type=int, default=30, help="GRPO steps in the ground-truth env (~1.5 s each)")
    parser.add_argument("--wm-steps", type=int, default=8, help="GRPO steps in the world model (~15 s each)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--heldout", type=int, default=64, help="ground-truth evaluation episodes (held-out starts)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "learning_world_env.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = REPO / "runs" / "learning_world_env"
    steps = {"ground_truth": args.gt_steps, "world_model": args.wm_steps}
    rows = [run_one(s, seed, steps[s], args, output) for s in args.settings for seed in args.seeds]
    summary: dict = {}
    for setting in args.settings:
        mine = [r for r in rows if r["setting"] == setting]
        deltas = [r["after"] - r["before"] for r in mine]
        summary[setting] = {"before_mean": statistics.mean(r["before"] for r in mine),
                            "after_mean": statistics.mean(r["after"] for r in mine), "delta_mean": statistics.mean(deltas),
                            "delta_std": statistics.stdev(deltas) if len(deltas) > 1 else 0.0, "seeds": len(mine)}
    for name in ("world-env-reach-wm/world_env_wm.json", "world-env-reflector/world_env_reflector.json"):
        path = REPO / "artifacts" / name
        if path.is_file():
            summary[name.split("/")[0]] = json.loads(path.read_text())
    text = table(rows, summary, args)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "summary": summary, "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    args.out.with_suffix(".md").write_text(f"# World-Env learning check\n\n`python benchmarks/learning_world_env.py "
                                           f"{command_line(args)}`\n\n{text}\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
