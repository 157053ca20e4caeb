"""Greedy ground-truth success of World-Env policies on a wider held-out split than the benchmark's 64 starts.

    python benchmarks/world_env_wider_heldout.py --runs runs/learning_world_env_s7/world_model_policy500_snap \
        --heldout 256 --name learning_world_env_s7_policy500_wider

The benchmark scores 64 held-out starts, and several world-model settings have been compared on them over the
sessions; the starts after the first 64 (`data.task_args.heldout_size=N`, the same held-out stream extended) were never
used to compare anything. For the warm start and each seed's final policy this scores one greedy episode per start, as
`WorldEnvTask.evaluate_policy` does in training, and reports the first 64 (which must equal the runs' own
`heldout_accuracy_after`: a check that the split extends rather than reshuffles) and the rest apart.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
BENCHMARK_STARTS = 64


def greedy_successes(model_dir: str | Path, heldout: int) -> list[float]:
    """One greedy GT episode per held-out start: 1.0 / 0.0 per start, in held-out order."""
    import torch

    from learning_world_env import heldout_run
    from mmpost.envs import run_episodes
    from mmpost.rollout.base import SamplingParams

    torch.set_num_threads(1)
    run = heldout_run(str(model_dir), heldout)
    task, rows = run.task, list(run.heldout_rows)
    params = SamplingParams(n=1, greedy=True, max_new_tokens=2 * task.chunk + 1)
    episodes = run_episodes(run.policy, run.backend, task.ground_truth_env(), rows, params, group_size=1,
                            max_policy_calls=task.max_policy_calls, seed=task.seed)
    return [float(e.stats.success) for e in episodes]


def gain_statistics(gains: list[float]) -> dict[str, float]:
    """Mean, sample std and the mean in standard errors (std / sqrt(n)) of per-seed gains."""
    mean = statistics.fmean(gains)
    std = statistics.stdev(gains) if len(gains) > 1 else float("nan")
    se = std / len(gains) ** 0.5
    return {"mean": mean, "std": std, "se": se, "in_se": mean / se if se > 0 else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="folder of seed<N>/ run folders (each with summary.json)")
    parser.add_argument("--warm-start", default=str(REPO / "artifacts" / "tiny-vla-world-env"))
    parser.add_argument("--heldout", type=int, default=256)
    parser.add_argument("--name", required=True, help="results file stem under benchmarks/results")
    args = parser.parse_args(argv)
    runs = sorted(p for p in Path(args.runs).glob("seed*") if (p / "summary.json").is_file())
    if not runs:
        parser.error(f"{args.runs}: no seed*/summary.json")
    before = greedy_successes(args.warm_start, args.heldout)
    table, record = [], {"heldout": args.heldout, "warm_start": args.warm_start, "before": before, "seeds": {}}
    parts = {"first 64 (the benchmark's)": slice(0, BENCHMARK_STARTS),
             f"starts 64-{args.heldout - 1} (never compared on)": slice(BENCHMARK_STARTS, args.heldout),
             f"all {args.heldout}": slice(0, args.heldout)}
    gains = {name: [] for name in parts}
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        model = run / "checkpoints" / f"step_{summary['steps']}" / "model"
        after = greedy_successes(model, args.heldout)
        first = statistics.fmean(after[:BENCHMARK_STARTS])
        if abs(first - summary["heldout_accuracy_after"]) > 1e-9:
            raise RuntimeError(f"{run}: first {BENCHMARK_STARTS} starts give {first}, the run recorded "
                               f"{summary['heldout_accuracy_after']}: the wider split does not extend the benchmark's")
        record["seeds"][run.name] = after
        for name, part in parts.items():
            gains[name].append(statistics.fmean(after[part]) - statistics.fmean(before[part]))
    lines = [f"**World-Env policies on {args.heldout} held-out starts** (`{args.runs}`; greedy, ground truth; "
             f"seeds {', '.join(r.name for r in runs)})", "",
             "| held-out starts | before | gain per seed | gain (mean ± std) | SE | gain / SE |", "|---|---|---|---|---|---|"]
    for name, part in parts.items():
        stats = gain_statistics(gains[name])
        lines.append(f"| {name} | {statistics.fmean(before[part]):.3f} | "
                     f"{' / '.join(f'{g:+.3f}' for g in gains[name])} | {stats['mean']:+.3f} ± {stats['std']:.3f} | "
                     f"{stats['se']:.3f} | {stats['in_se']:+.1f} |")
        record.setdefault("gains", {})[name] = {"per_seed": gains[name], **stats}
    text = "\n".join(lines) + "\n"
    results = REPO / "benchmarks" / "results"
    (results / f"{args.name}.md").write_text(text)
    (results / f"{args.name}.json").write_text(json.dumps(record, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
