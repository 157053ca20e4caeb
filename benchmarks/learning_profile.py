"""Where a learning run's CPU time goes: one recipe run in this process, phase by phase, as `mmpost train` runs it
(benchmarks/learning.py and friends run it as shipped), with CPU seconds (process time, 1 torch thread) and wall
seconds per phase: imports and warm-start load, the held-out evaluation before training (greedy, then k samples
per prompt), `--steps` training steps (extrapolated to the recipe's step count), the checkpoint, and the evaluation
after (the same two passes).

    OMP_NUM_THREADS=1 python benchmarks/learning_profile.py grpo --steps 5
    OMP_NUM_THREADS=1 python benchmarks/learning_profile.py guirlvg --steps 3 --set optim.lr=5e-4

Not a test. Adds its entry to benchmarks/results/learning_profile.json, which the bench-learning estimate reads
(benchmarks/learning.py `suite_budget_text`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STARTED_WALL, STARTED_CPU = time.perf_counter(), time.process_time()

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO  # noqa: E402


class Phases:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def mark(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.rows.append((name, cpu - self.cpu, wall - self.wall))
        self.wall, self.cpu = wall, cpu
        print(f"  {name}: {self.rows[-1][1]:.1f} CPU s, {self.rows[-1][2]:.1f} wall s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--steps", type=int, default=5, help="training steps measured (extrapolated to train.steps)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "profile")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    import torch

    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.diagnostics import RunDiagnostics
    from mmpost.model import ensure_model_folder
    from mmpost.trainer import _heldout_decode, heldout_accuracy, train_step

    torch.set_num_threads(1)
    phases = Phases()
    phases.rows.append(("python + torch + mmpost imports", phases.cpu - STARTED_CPU, phases.wall - STARTED_WALL))
    config = load_config(REPO / "recipes" / f"{args.recipe}.yaml",
                         [*args.overrides, f"train.output_dir={args.out / args.recipe}", "train.progress=false"])
    ensure_model_folder(config.model)
    run = build_run(config)
    run.diagnostics = RunDiagnostics(run)
    phases.mark("config, warm-start load, data, build_run")
    before = {"heldout_accuracy": heldout_accuracy(run)}
    phases.mark(f"before: greedy held-out ({len(run.heldout_rows)} rows)")
    before.update(run.diagnostics.heldout_sampling(run, _heldout_decode(run)))
    phases.mark("before: sampled held-out (pass@k)")
    within: dict[str, float] = {}
    for step in range(1, args.steps + 1):
        for key, value in train_step(run, step).items():
            if key.startswith("perf/") and key.endswith("_s"):
                within[key] = within.get(key, 0.0) + value
    phases.mark(f"{args.steps} training steps")
    after = {"heldout_accuracy": heldout_accuracy(run)}
    phases.mark("after: greedy held-out")
    after.update(run.diagnostics.heldout_sampling(run, _heldout_decode(run)))
    phases.mark("after: sampled held-out (pass@k)")
    steps = config.train.steps
    per_step = next(cpu for name, cpu, _ in phases.rows if name.endswith("training steps")) / args.steps
    estimate = sum(cpu for name, cpu, _ in phases.rows if not name.endswith("training steps")) + per_step * steps
    record = {"machine": "shared 2-core machine (other sessions' work running), 1 torch thread", "recipe": args.recipe,
              "overrides": args.overrides, "measured_steps": args.steps, "recipe_steps": steps,
              "phases": [{"phase": n, "cpu_s": round(c, 2), "wall_s": round(w, 2)} for n, c, w in phases.rows],
              "cpu_s_per_step": round(per_step, 3),
              "wall_s_per_step_by_part": {k: round(v / args.steps, 3) for k, v in within.items()}, "estimated_run_cpu_s": round(estimate, 1),
              "before": before, "after": after}
    print(json.dumps(record, indent=1), flush=True)
    # One entry per recipe (and overrides) in the results file the bench-learning estimate reads; others are kept.
    results = args.results / "learning_profile.json"
    stored = json.loads(results.read_text()) if results.is_file() else {}
    stored[" ".join([args.recipe, *args.overrides])] = record
    results.write_text(json.dumps(stored, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
