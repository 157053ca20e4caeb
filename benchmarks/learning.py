"""Learning, shown not claimed: held-out accuracy before/after each method, from the same warm start.

    python benchmarks/learning.py                      # all groups, 3 seeds
    python benchmarks/learning.py --group shapes --seeds 0 1 2 3 --steps 60
    python benchmarks/learning.py --suite world_models # RLIR-AR, RLIR-diffusion, World-Env vs direct RL in the GT env

Each method is a shipped recipe run through `mmpost.train` with the same model, data, step budget and seeds;
only the recipe differs. Prints a Markdown table (mean ± std over seeds) and writes it with the raw numbers to
`benchmarks/results/learning.{md,json}`. Not a test: it takes minutes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class Method:
    name: str
    recipe: str
    overrides: list[str] = field(default_factory=list)


@dataclass
class Group:
    """Methods compared on one task from one warm-started model."""

    name: str
    model_zoo: str
    model_dir: str
    methods: list[Method]
    overrides: list[str] = field(default_factory=list)
    metric: str = "held-out accuracy"


SHAPES_SHARED = ["data.task_args={heldout_size: 256}", "train.progress=false", "train.threads=2"]
GROUPS = {
    "shapes": Group(
        name="shapes",
        model_zoo="tiny-qwen2.5-vl-shapes",
        model_dir="artifacts/tiny-qwen2.5-vl-shapes",
        overrides=SHAPES_SHARED,
        methods=[
            Method("SFT only", "sft"),
            Method("GRPO only", "grpo"),
            Method("ViSurf", "visurf"),
            Method("CHORD", "chord"),
            Method("HPT", "hpt"),
        ],
    ),
}


def run_method(group: Group, method: Method, seed: int, steps: int, out_root: Path) -> dict:
    from mmpost.config import load_config
    from mmpost.trainer import train

    # Methods sharing a recipe differ by their overrides, so those name the folder too.
    folder = method.recipe if not method.overrides else f"{method.recipe}-{hashlib.sha1(repr(method.overrides).encode()).hexdigest()[:8]}"
    output_dir = out_root / group.name / folder / f"seed{seed}"
    overrides = [f"model.path={group.model_dir}", f"model.zoo={group.model_zoo}", f"train.seed={seed}",
                 f"train.steps={steps}", f"train.output_dir={output_dir}", *group.overrides, *method.overrides]
    finished = output_dir / "summary.json"
    if finished.is_file():  # an interrupted benchmark continues: finished runs are read back, not rerun
        summary = json.loads(finished.read_text())
        if summary.get("steps") == steps:
            return {"before": summary["heldout_accuracy_before"], "after": summary["heldout_accuracy_after"],
                    "seconds": summary["seconds"], "seconds_per_step": summary.get("seconds_per_step")}
    started = time.perf_counter()
    summary = train(load_config(REPO / "recipes" / f"{method.recipe}.yaml", overrides))
    return {"before": summary["heldout_accuracy_before"], "after": summary["heldout_accuracy_after"],
            "seconds": time.perf_counter() - started, "seconds_per_step": summary.get("seconds_per_step")}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(group: Group, results: dict[str, list[dict]], steps: int, seeds: list[int]) -> str:
    lines = [f"**{group.name}** ({group.metric}, {steps} steps, seeds {seeds}, warm start `{group.model_zoo}`)", "",
             "| method | before | after | gain | s/step |", "|---|---|---|---|---|"]
    for method in group.methods:
        runs = results[method.name]
        before = [r["before"] for r in runs]
        after = [r["after"] for r in runs]
        gain = [a - b for a, b in zip(after, before)]
        per_step = statistics.mean(r["seconds_per_step"] or 0.0 for r in runs)
        lines.append(f"| {method.name} | {mean_std(before)} | {mean_std(after)} | {mean_std(gain)} | {per_step:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", action="append", choices=sorted(GROUPS), help="default: all groups")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default="runs/benchmark-learning")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--suite", choices=["methods", "world_models", "all"], default="methods",
                        help="methods: the groups above; world_models: benchmarks/learning_rlir.py (RLIR-AR and "
                             "RLIR-diffusion: held-out IDM accuracy and gold metrics before/after) and "
                             "benchmarks/learning_world_env.py (World-Env vs direct RL in the ground-truth env)")
    args = parser.parse_args(argv)
    if args.suite in ("world_models", "all"):
        import subprocess

        seeds = [str(seed) for seed in args.seeds]
        for script in ("learning_rlir.py", "learning_world_env.py"):
            subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--seeds", *seeds], check=True)
        if args.suite == "world_models":
            return 0

    import torch

    torch.set_num_threads(2)
    report, raw = [], {}
    for name in args.group or sorted(GROUPS):
        group = GROUPS[name]
        results: dict[str, list[dict]] = {}
        for method in group.methods:
            results[method.name] = []
            for seed in args.seeds:
                outcome = run_method(group, method, seed, args.steps, Path(args.out))
                results[method.name].append(outcome)
                print(f"[{group.name}] {method.name} seed {seed}: {outcome['before']:.3f} -> {outcome['after']:.3f} "
                      f"({outcome['seconds']:.0f} s)", flush=True)
        report.append(table(group, results, args.steps, args.seeds))
        raw[name] = results
    text = "\n\n".join(report)
    print("\n" + text)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "learning.md").write_text(text + "\n")
    (results_dir / "learning.json").write_text(json.dumps({"steps": args.steps, "seeds": args.seeds, "results": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
