"""Greedy ground-truth success of World-Env policies on a wider held-out split than the benchmark's 64 starts.

    python benchmarks/world_env_wider_heldout.py --runs runs/learning_world_env_s7/world_model_policy500_snap \
        --heldout 256 --name learning_world_env_s7_policy500_wider

The benchmark scores 64 held-out starts, and several world-model settings have been compared on them over the
sessions; the starts after the first 64 (`data.task_args.heldout_size=N`, the same held-out stream extended) were never
used to compare anything. For the warm start and each seed's final policy this scores one greedy episode per start, as
`WorldEnvTask.evaluate_policy` does in training, and reports the first 64 (which must equal the runs' own
`heldout_accuracy_after`: a check that the split extends rather than reshuffles) and the rest apart.

Held-out rows are drawn per index from about 300 (start, target) configurations (112 held-out grid points x 4 task
targets), so rows repeat them: rows 64-255 hold 34 configurations of rows 0-63, rows 256-767 only 130 configurations
not in rows 0-255. A greedy episode is a function of its configuration, so each distinct one is played once, and the
report adds the configurations of rows `--fresh-from`.. that occur in no earlier row, each once (session 8:
`--heldout 768 --fresh-from 256`).

`--sampled-k 8` adds, on those fresh configurations, k sampled episodes per configuration at the recipe's training
temperature for the warm start and each seed (sampled success and pass@k; session 9's secondary measure: a greedy
0/1 per configuration flips with small changes, the sampled rate shows whether the whole policy moved).
`--paired-with OTHER.json` (another policy set's results of this script, same seeds) adds the per-seed difference
of the gains, this set minus the other (session 9: world model against the ground-truth control).
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


def configuration(row: dict) -> tuple:
    """What a greedy episode depends on: the start and the target (the instruction follows from the target)."""
    return tuple(row["position"]), tuple(row["target"])


def distinct_configurations(rows: list[dict]) -> tuple[list[dict], list[int]]:
    """The rows with each (start, target) once, in first-seen order, and for every row the index of its own there.
    Held-out rows are drawn per index from about 300 configurations, so they repeat; a greedy episode is a function
    of its configuration, so each is played once."""
    first: dict[tuple, int] = {}
    for row in rows:
        first.setdefault(configuration(row), len(first))
    unique = {first[configuration(row)]: row for row in reversed(rows)}
    return [unique[k] for k in range(len(first))], [first[configuration(row)] for row in rows]


def fresh_configurations(rows: list[dict], seen: int, start: int) -> list[int]:
    """Indices of the rows from `start` on whose configuration occurs in no row before `seen`, each configuration
    once (its first row)."""
    old, fresh = {configuration(row) for row in rows[:seen]}, {}
    for index in range(start, len(rows)):
        key = configuration(rows[index])
        if key not in old:
            fresh.setdefault(key, index)
    return sorted(fresh.values())


def greedy_successes(model_dir: str | Path, heldout: int) -> list[float]:
    """One greedy GT episode per held-out start: 1.0 / 0.0 per start, in held-out order (each distinct configuration
    played once)."""
    import torch

    from learning_world_env import heldout_run
    from mmpost.envs import run_episodes
    from mmpost.rollout.base import SamplingParams

    torch.set_num_threads(1)
    run = heldout_run(str(model_dir), heldout)
    task = run.task
    rows, index = distinct_configurations(list(run.heldout_rows))
    params = SamplingParams(n=1, greedy=True, max_new_tokens=2 * task.chunk + 1)
    episodes = run_episodes(run.policy, run.backend, task.ground_truth_env(), rows, params, group_size=1,
                            max_policy_calls=task.max_policy_calls, seed=task.seed)
    return [float(episodes[k].stats.success) for k in index]


def heldout_rows(heldout: int) -> list[dict]:
    """The recipe task's first `heldout` held-out rows (no model needed)."""
    from mmpost.config import load_config
    from mmpost.tasks.world_env.task import WorldEnvTask

    task_args = dict(load_config(REPO / "recipes" / "world_env.yaml", []).data.task_args)
    return WorldEnvTask(**{**task_args, "heldout_size": heldout}).load("heldout")


def mean_at(values: list[float], indices: list[int]) -> float:
    return statistics.fmean(values[i] for i in indices)


def gain_statistics(gains: list[float]) -> dict[str, float]:
    """Mean, sample std and the mean in standard errors (std / sqrt(n)) of per-seed gains."""
    mean = statistics.fmean(gains)
    std = statistics.stdev(gains) if len(gains) > 1 else float("nan")
    se = std / len(gains) ** 0.5
    return {"mean": mean, "std": std, "se": se, "in_se": mean / se if se > 0 else float("nan")}


def gain_line(name: str, before: float | None, gains: list[float]) -> str:
    """One table row: the part, its value before ("-" for none), the per-seed gains and their mean ± std, SE and
    mean / SE."""
    stats, first = gain_statistics(gains), "-" if before is None else f"{before:.3f}"
    return (f"| {name} | {first} | {' / '.join(f'{g:+.3f}' for g in gains)} | {stats['mean']:+.3f} ± "
            f"{stats['std']:.3f} | {stats['se']:.3f} | {stats['in_se']:+.1f} |")


def paired_differences(gains: dict[str, list[float]], other: dict[str, dict]) -> dict[str, list[float]]:
    """Per part and seed, this set's gain minus the other set's (`other`: its record's "gains"); parts the other
    lacks are left out."""
    return {name: [a - b for a, b in zip(per_seed, other[name]["per_seed"], strict=True)]
            for name, per_seed in gains.items() if name in other}


def sampled_on(policies: dict[str, str | Path], heldout: int, indices: list[int], k: int, seed: int) -> dict[str, dict]:
    """k sampled GT episodes per configuration in `indices` at the recipe's training temperature, per policy."""
    from learning_world_env import sampled_success
    from mmpost.config import load_config

    temperature = load_config(REPO / "recipes" / "world_env.yaml", []).rollout.temperature
    return {name: {**sampled_success(str(model), heldout, k, temperature, seed=seed, indices=indices),
                   "temperature": temperature} for name, model in policies.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="folder of seed<N>/ run folders (each with summary.json)")
    parser.add_argument("--warm-start", default=str(REPO / "artifacts" / "tiny-vla-world-env"))
    parser.add_argument("--heldout", type=int, default=256)
    parser.add_argument("--fresh-from", type=int, default=BENCHMARK_STARTS,
                        help="the first held-out row never compared on (session 7: 64; session 8: 256)")
    parser.add_argument("--sampled-k", type=int, default=0,
                        help="also k sampled episodes per fresh configuration at the training temperature (0: off)")
    parser.add_argument("--sampled-seed", type=int, default=0)
    parser.add_argument("--paired-with", type=Path, default=None,
                        help="another policy set's results JSON of this script: per-seed gain differences")
    parser.add_argument("--name", required=True, help="results file stem under --results")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    runs = sorted(p for p in Path(args.runs).glob("seed*") if (p / "summary.json").is_file())
    if not runs:
        parser.error(f"{args.runs}: no seed*/summary.json")
    if not BENCHMARK_STARTS <= args.fresh_from < args.heldout:
        parser.error(f"--fresh-from must lie in {BENCHMARK_STARTS}..{args.heldout - 1}")
    rows = heldout_rows(args.heldout)
    before = greedy_successes(args.warm_start, args.heldout)
    table, record = [], {"heldout": args.heldout, "fresh_from": args.fresh_from, "warm_start": args.warm_start,
                         "before": before, "seeds": {}}
    fresh = fresh_configurations(rows, args.fresh_from, args.fresh_from)
    parts = {"first 64 (the benchmark's)": list(range(BENCHMARK_STARTS)),
             f"starts {args.fresh_from}-{args.heldout - 1} (never compared on)": list(range(args.fresh_from, args.heldout)),
             f"their {len(fresh)} configurations not in starts 0-{args.fresh_from - 1}, each once": fresh,
             f"all {args.heldout}": list(range(args.heldout))}
    record["parts"] = parts
    gains = {name: [] for name in parts}
    models = {}
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        model = models[run.name] = run / "checkpoints" / f"step_{summary['steps']}" / "model"
        after = greedy_successes(model, args.heldout)
        first = statistics.fmean(after[:BENCHMARK_STARTS])
        if abs(first - summary["heldout_accuracy_after"]) > 1e-9:
            raise RuntimeError(f"{run}: first {BENCHMARK_STARTS} starts give {first}, the run recorded "
                               f"{summary['heldout_accuracy_after']}: the wider split does not extend the benchmark's")
        record["seeds"][run.name] = after
        for name, part in parts.items():
            gains[name].append(mean_at(after, part) - mean_at(before, part))
    lines = [f"**World-Env policies on {args.heldout} held-out starts** (`{args.runs}`; greedy, ground truth; "
             f"seeds {', '.join(r.name for r in runs)})", "",
             "| held-out starts | before | gain per seed | gain (mean ± std) | SE | gain / SE |", "|---|---|---|---|---|---|"]
    for name, part in parts.items():
        lines.append(gain_line(name, mean_at(before, part), gains[name]))
        record.setdefault("gains", {})[name] = {"per_seed": gains[name], **gain_statistics(gains[name])}
    if args.paired_with:
        differences = paired_differences(gains, json.loads(args.paired_with.read_text())["gains"])
        lines += ["", f"Paired by seed: this set's gain minus `{args.paired_with.name}`'s (greedy; same seeds)", "",
                  "| held-out starts | - | difference per seed | mean ± std | SE | mean / SE |", "|---|---|---|---|---|---|"]
        lines += [gain_line(name, None, d) for name, d in differences.items()]
        record["paired_with"] = {"file": str(args.paired_with), "differences": {
            name: {"per_seed": d, **gain_statistics(d)} for name, d in differences.items()}}
    if args.sampled_k:
        sampled = sampled_on({"before": args.warm_start, **models}, args.heldout, fresh, args.sampled_k, args.sampled_seed)
        lines += ["", f"Sampled success on the {len(fresh)} fresh configurations ({args.sampled_k} episodes each at "
                  f"temperature {sampled['before']['temperature']}, sampling seed {args.sampled_seed}; secondary)", "",
                  "| measure | before | gain per seed | gain (mean ± std) | SE | gain / SE |", "|---|---|---|---|---|---|"]
        for key, label in (("sampled_accuracy", "sampled success"), ("pass_at_k", f"pass@{args.sampled_k}")):
            lines.append(gain_line(label, sampled["before"][key],
                                   [sampled[run.name][key] - sampled["before"][key] for run in runs]))
        record["sampled_fresh"] = {"k": args.sampled_k, "seed": args.sampled_seed, "indices": fresh, **sampled}
    text = "\n".join(lines) + "\n"
    (args.results / f"{args.name}.md").write_text(text)
    (args.results / f"{args.name}.json").write_text(json.dumps(record, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
