"""Learning, shown not claimed: each method's held-out gain over its warm start, 3 seeds, with the numbers that say why.

    python benchmarks/learning.py                      # the shapes methods (SFT, GRPO, ViSurf, CHORD, HPT), 3 seeds
    python benchmarks/learning.py --seeds 0 1 --methods grpo visurf
    python benchmarks/learning.py --suite all          # everything `make bench-learning` runs (see SUITE_SCRIPTS)
    python benchmarks/learning.py --suite world_models # only RLIR-AR, RLIR-diffusion, World-Env vs direct RL in the GT env

Every method is a shipped recipe run as shipped (`mmpost train recipes/<name>.yaml train.seed=S`), from the same
cached warm start, with the same data, step budget and held-out split; seeds run as parallel processes (1 torch
thread each). Per method: held-out greedy accuracy before/after (mean ± std, per seed), the standard error of the
mean gain and whether it is >= 2 SE, held-out sampled accuracy and pass@k before/after, and the diagnostics of the
first and last 10 steps (reward, entropy, KL to the warm start, flat groups, clip fraction). Writes
benchmarks/results/learning.{md,json} and learning_<recipe>.png (benchmarks/learning_report.py). Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO, Job, Row, mean_std, question_kinds, run_jobs, write_report  # noqa: E402

METHODS = {  # recipe -> label; all on the shapes task from the warm start the recipes name
    "sft": "SFT",
    "grpo": "GRPO",
    "visurf": "ViSurf",
    "chord": "CHORD",
    "hpt": "HPT",
}
# `--suite all`: the other learning benchmarks, each a full run by default, in this order (scripts that are not
# there yet are skipped with a note).
SUITE_SCRIPTS = ["learning_vs_trl.py", "learning_modalities.py", "learning_audio.py", "learning_propa.py",
                 "learning_rlir.py", "learning_world_env.py", "learning_flow.py"]
BUDGET_NOTE = ("`make bench-learning` end to end, estimated from the wall times each results file recorded (the "
               "suite cannot be timed whole on the shared 2-core machine, where these runs shared the CPUs with other "
               "sessions' work; on a quiet machine each process has a core to itself):\n\n")
WORLD_MODEL_SCRIPTS = ["learning_rlir.py", "learning_world_env.py"]


def shapes_rows(seeds: list[int], methods: list[str], out: Path, parallel: int) -> list[Row]:
    from mmpost.config import load_config
    from mmpost.model import ensure_model_folder

    configs = {m: load_config(REPO / "recipes" / f"{m}.yaml") for m in methods}
    for config in configs.values():  # built once (with a progress bar), cached for every run
        ensure_model_folder(config.model)
    jobs = [Job(key=(m, s), recipe=m, seed=s, overrides=[], output_dir=out / "shapes" / m / f"seed{s}") for m in methods
            for s in seeds]
    runs = run_jobs(jobs, parallel=parallel)
    return [Row(METHODS[m], m, [runs[(m, s)] for s in seeds], task="shapes", warm_start=configs[m].model.zoo or "",
                steps=configs[m].train.steps) for m in methods]


def comparison_text(rows: list[Row]) -> str:
    """ViSurf against GRPO and SFT at equal budget (its paper's claim), and GRPO's pass@k gap closure."""
    by = {r.slug: r.statistics() for r in rows}
    lines = []
    if "visurf" in by:
        for other in ("grpo", "sft"):
            if other in by:
                difference = mean_std(by["visurf"]["after"])[0] - mean_std(by[other]["after"])[0]
                lines.append(f"- ViSurf − {other.upper()} (held-out after, same budget): {difference:+.3f}")
    if "grpo" in by and "pass_at_k_before" in by["grpo"]:
        g = by["grpo"]
        gap = mean_std(g["pass_at_k_before"])[0] - mean_std(g["before"])[0]
        closed = mean_std(g["after"])[0] - mean_std(g["before"])[0]
        lines.append(f"- GRPO: warm start pass@{g.get('pass_k')} − pass@1 gap {gap:.3f}; greedy gain {closed:+.3f} "
                     f"= {closed / gap:.0%} of the gap" if gap > 0 else "- GRPO: no pass@k headroom")
        from mmpost.builder import build_task, load_split
        from mmpost.config import load_config

        config = load_config(REPO / "recipes" / "grpo.yaml")
        table = gap_by_kind(next(r for r in rows if r.slug == "grpo"), list(load_split(build_task(config), "heldout", config)))
        if table:
            lines.append("\nGRPO's warm-start pass@k − pass@1 gap by question kind (mean over the GRPO seeds' before "
                         "numbers); the guessing level is a uniform guess among the kind's choices:\n\n" + table)
    return "\n".join(lines)


def chance_pass_at_k(choices: int, k: int) -> float:
    """pass@k of a guesser drawing uniformly from `choices` answers: 1 - (1 - 1/c)^k (a coin: 0.996 at k = 8)."""
    return 1.0 - (1.0 - 1.0 / choices) ** k


def gap_by_kind(row: Row, heldout: list[dict]) -> str:
    """Where a warm start's pass@k − pass@1 gap comes from, per question kind: each kind's share of the held-out
    questions × its gap, and the part of that gap above what uniform guessing among the kind's answer choices
    already reaches at k samples (pass@k at the guessing level shows no knowledge a policy could be sharpened onto)."""
    from collections import Counter

    kinds = question_kinds(row)
    if not kinds or not row.runs:
        return ""
    counts = Counter(str(s["kind"]) for s in heldout)
    choices = {str(s["kind"]): len(s["choices"]) for s in heldout if s.get("choices")}
    k = int(row.runs[0].summary.get("heldout_pass_k_before") or 0)
    lines = [f"| kind | share | greedy | pass@{k} | gap | guessing pass@{k} (choices) | gap share | gap above guessing |",
             "|---|---|---|---|---|---|---|---|"]
    total = above_total = 0.0
    for kind in kinds:
        share = counts[kind] / len(heldout)
        greedy = statistics.mean(r.summary[f"heldout_accuracy_{kind}_before"] for r in row.runs)
        best = statistics.mean(r.summary[f"heldout_pass_at_k_{kind}_before"] for r in row.runs)
        guess = chance_pass_at_k(choices[kind], k)
        above = share * max(0.0, best - max(greedy, guess))
        total += share * (best - greedy)
        above_total += above
        lines.append(f"| {kind} | {share:.3f} | {greedy:.3f} | {best:.3f} | {best - greedy:.3f} | {guess:.3f} ({choices[kind]}) "
                     f"| {share * (best - greedy):.3f} | {above:.3f} |")
    lines.append(f"| all | 1.000 | | | | | {total:.3f} | {above_total:.3f} |")
    return "\n".join(lines)


def recorded_job_seconds(data: dict) -> tuple[float, int, str]:
    """(seconds, jobs, how) of one results JSON: the wall time of each recorded training process, summed. The
    benchmarks record it in different shapes: per-seed runs with `seconds` (learning_report), per-label lists of
    seconds (World-Env), a list of run records (RLIR), one total wall time (PROPA), or, for the TRL control, only
    seconds per step (then steps × s/step × seeds: training only, its evaluation is not included)."""
    runs = data.get("runs")
    if isinstance(runs, dict) and all(isinstance(v, list) for v in runs.values()):
        values = [r.get("seconds") if isinstance(r, dict) else r for v in runs.values() for r in v]
        values = [v for v in values if isinstance(v, (int, float))]
        if values:
            return float(sum(values)), len(values), "per process"
    if isinstance(runs, list):
        values = [r["seconds"] for r in runs if isinstance(r, dict) and isinstance(r.get("seconds"), (int, float))]
        return float(sum(values)), len(values), "per process"
    if isinstance(data.get("seconds"), (int, float)):
        return float(data["seconds"]), 1, "whole script (wall)"
    total, jobs = 0.0, 0
    for part in data.values():
        for side in (part.values() if isinstance(part, dict) else []):
            if isinstance(side, dict) and side.get("seconds_per_step") and side.get("steps"):
                total += side["seconds_per_step"] * side["steps"] * len(side.get("seeds") or [0])
                jobs += len(side.get("seeds") or [0])
    return total, jobs, "steps × s/step (training only)"


def suite_budget_text(results: Path = REPO / "benchmarks" / "results", parallel: int = 2) -> str:
    """`make bench-learning`'s end-to-end time, estimated from the wall times the results files recorded (the suite
    cannot be timed whole on the shared machine): each script's process seconds / `parallel`, plus the warm-start
    builds recorded in artifacts/*/mmpost_zoo.json (each built once, then cached)."""
    import json

    names = ["learning.json"] + [script.replace(".py", ".json") for script in SUITE_SCRIPTS]
    lines = ["| part | recorded processes | process seconds | how | wall at 2 processes |", "|---|---|---|---|---|"]
    total = 0.0
    for name in names:
        path = results / name
        if not path.is_file():
            lines.append(f"| {name[:-5]} | - | - | no results file | - |")
            continue
        seconds, jobs, how = recorded_job_seconds(json.loads(path.read_text()))
        wall = seconds if how.startswith("whole") else seconds / parallel
        total += wall
        lines.append(f"| {name[:-5]} | {jobs} | {seconds:.0f} | {how} | {wall / 60:.1f} min |")
    builds = {}
    for stamp in sorted((REPO / "artifacts").glob("*/mmpost_zoo.json")):
        record = json.loads(stamp.read_text())
        if record.get("build_seconds"):
            builds[record.get("zoo") or stamp.parent.name] = float(record["build_seconds"])
    build_total = sum(builds.values())
    lines.append(f"| warm-start builds ({', '.join(builds)}) | {len(builds)} | {build_total:.0f} | recorded build time, "
                 f"one at a time | {build_total / 60:.1f} min |")
    total += build_total
    lines.append(f"| **all** | | | | **{total / 60:.0f} min** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (1 torch thread each)")
    parser.add_argument("--out", default="runs/benchmark-learning")
    parser.add_argument("--suite", choices=["shapes", "all", "world_models"], default="shapes")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.suite == "world_models":
        run_scripts(WORLD_MODEL_SCRIPTS, args.seeds, started)
        return 0
    rows = shapes_rows(args.seeds, args.methods, REPO / args.out, args.parallel)
    text = write_report(rows, "learning", title=f"**shapes** (held-out accuracy, 256 questions, greedy; seeds {args.seeds})",
                        text=comparison_text(rows) + "\n\n" + BUDGET_NOTE + suite_budget_text())
    print(text, flush=True)
    print(f"shapes: {time.perf_counter() - started:.0f} s", flush=True)
    if args.suite == "all":
        run_scripts(SUITE_SCRIPTS, args.seeds, started)
    return 0


def run_scripts(scripts: list[str], seeds: list[int], started: float) -> None:
    for script in scripts:
        path = REPO / "benchmarks" / script
        if not path.is_file():
            print(f"(skipping {script}: not present)", flush=True)
            continue
        begun = time.perf_counter()
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(path), "--seeds", *map(str, seeds)], cwd=REPO, check=True)
        print(f"{script}: {time.perf_counter() - begun:.0f} s", flush=True)
    print(f"whole suite: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
