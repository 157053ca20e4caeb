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
BUDGET_NOTE = ("`make bench-learning` end to end, estimated per part from the wall seconds each training process "
               "recorded in the results files (on the shared 2-core machine, with other sessions' work running: an "
               "upper bound for a quiet machine), less the held-out evaluations before training that the suite now "
               "reuses instead of recomputing (benchmarks/learning_job.py; their CPU seconds measured by "
               "benchmarks/learning_profile.py, results/learning_profile.json), each part's processes scheduled in run "
               "order on 2 lanes, PROPA's evaluation stage counted:\n\n")
WORLD_MODEL_SCRIPTS = ["learning_rlir.py", "learning_world_env.py"]


def shapes_rows(seeds: list[int], methods: list[str], out: Path, parallel: int) -> list[Row]:
    from mmpost.config import load_config
    from mmpost.model import ensure_model_folder

    configs = {m: load_config(REPO / "recipes" / f"{m}.yaml") for m in methods}
    for config in configs.values():  # built once (with a progress bar), cached for every run
        ensure_model_folder(config.model)
    # The warm start's held-out evaluation is the same for every method: computed once per seed (reuse_before).
    jobs = [Job(key=(m, s), recipe=m, seed=s, overrides=[], output_dir=out / "shapes" / m / f"seed{s}", reuse_before=True)
            for m in methods for s in seeds]
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


def lane_wall(seconds: list[float], parallel: int) -> float:
    """Wall time of jobs run in order, each on the first of `parallel` lanes to come free (as run_jobs starts them)."""
    lanes = [0.0] * max(1, parallel)
    for value in seconds:
        lanes[lanes.index(min(lanes))] += value
    return max(lanes)


def per_process_seconds(data: dict, labels: list[str] | None = None) -> list[float]:
    """The recorded wall seconds of each training process of a results JSON (rows in `labels` only, when given)."""
    runs = data.get("runs")
    if isinstance(runs, dict):
        return [float(r["seconds"] if isinstance(r, dict) else r) for label, values in runs.items()
                if isinstance(values, list) and (labels is None or label in labels) for r in values
                if isinstance(r, (int, float)) or (isinstance(r, dict) and isinstance(r.get("seconds"), (int, float)))]
    if isinstance(runs, list):
        return [float(r["seconds"]) for r in runs if isinstance(r, dict) and isinstance(r.get("seconds"), (int, float))]
    return []


def profiled_before_seconds(profile: dict, recipe: str) -> float:
    """CPU seconds of the held-out evaluation before training (greedy + sampled) in learning_profile.py's entry."""
    entry = profile.get(recipe) or next((v for k, v in profile.items() if k.split()[0] == recipe), None)
    if not entry:
        return 0.0
    return sum(p["cpu_s"] for p in entry["phases"] if p["phase"].startswith("before:"))


def suite_budget(results: Path = REPO / "benchmarks" / "results", parallel: int = 2) -> list[dict]:
    """`make bench-learning`'s parts as the suite runs them now, each with its processes' recorded seconds (wall
    seconds of each process, recorded on the shared machine: an upper bound for a quiet one), less the held-out
    evaluations before training that are now reused (their CPU seconds from learning_profile.json), scheduled on
    `parallel` lanes in run order; PROPA's evaluation stage (its recorded wall, at 2 processes) added."""
    import json

    def load(name):
        path = results / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    profile = load("learning_profile") or {}
    parts = []
    shapes = load("learning")
    if shapes:
        # 5 methods × 3 seeds in method order; the first method's run of each seed evaluates the warm start.
        before = profiled_before_seconds(profile, "grpo")
        seconds = per_process_seconds(shapes)
        reused = max(0, len(seconds) - 3)
        adjusted = seconds[:3] + [max(0.0, v - before) for v in seconds[3:]]
        parts.append({"part": "learning (shapes: SFT, GRPO, ViSurf, CHORD, HPT)", "processes": len(seconds),
                      "recorded_s": sum(seconds), "reused_before": reused, "saved_s": reused * before,
                      "wall_s": lane_wall(adjusted, parallel)})
    trl = load("learning_vs_trl")
    if trl:
        # mmpost's side is learning.py's GRPO and SFT runs (same folders, commands and fingerprints): read back, not rerun.
        # TRL's side: its training (steps × s/step) and the evaluation of its model after training; the warm start's
        # numbers are the mmpost runs' (same key).
        seconds = []
        for part, sides in trl.items():
            side = sides.get("trl", {})
            entry = profile.get(part) or {}
            after = sum(p["cpu_s"] for p in entry.get("phases", []) if p["phase"].startswith("after:"))
            seconds += [side["seconds_per_step"] * side["steps"] + after for _ in side.get("seeds", [])]
        parts.append({"part": "learning_vs_trl (TRL side; mmpost side read back from learning)", "processes": len(seconds),
                      "recorded_s": sum(seconds), "reused_before": len(seconds), "saved_s": 0.0,
                      "wall_s": lane_wall(seconds, parallel), "note": "training recorded as s/step; evaluation after from the profile"})
    modalities = load("learning_modalities")
    if modalities:
        from learning_modalities import DEFAULT_GROUPS, GROUPS

        seconds, saved, reused, seen = [], 0.0, 0, set()
        for name in DEFAULT_GROUPS:
            group = GROUPS[name]
            values = per_process_seconds(modalities, [group.label])
            before = profiled_before_seconds(profile, group.recipe)
            share = group.recipe in seen  # MM-UPT's two learning rates start from one warm start
            seen.add(group.recipe)
            if share:
                reused += len(values)
                saved += before * len(values)
                values = [max(0.0, v - before) for v in values]
            seconds += values
        parts.append({"part": f"learning_modalities ({', '.join(DEFAULT_GROUPS)})", "processes": len(seconds),
                      "recorded_s": sum(seconds) + saved, "reused_before": reused, "saved_s": saved,
                      "wall_s": lane_wall(seconds, parallel)})
    for name in ("learning_audio", "learning_rlir", "learning_world_env", "learning_flow"):
        data = load(name)
        if data:
            seconds = per_process_seconds(data)
            parts.append({"part": name, "processes": len(seconds), "recorded_s": sum(seconds), "reused_before": 0,
                          "saved_s": 0.0, "wall_s": lane_wall(seconds, parallel)})
    propa = load("learning_propa")
    if propa:
        seconds = [float(v) for v in (propa.get("training_run_seconds") or {}).values()]
        stage = sum(float(propa.get("wall_seconds", {}).get(k, 0.0)) for k in ("sampled_chains", "inference"))
        parts.append({"part": "learning_propa (training + its evaluation stage)", "processes": len(seconds),
                      "recorded_s": sum(seconds), "reused_before": 0, "saved_s": 0.0,
                      "wall_s": lane_wall(seconds, parallel) + stage,
                      "note": f"evaluation stage {stage / 60:.1f} min wall (sampled chains + PRM-guided search, 2 processes)"})
    return parts


def suite_budget_text(results: Path = REPO / "benchmarks" / "results", parallel: int = 2) -> str:
    """The estimate as a table (see suite_budget), with the warm-start builds listed apart (cached after one build)."""
    import json

    parts = suite_budget(results, parallel)
    lines = [f"| part | processes | recorded process s | before-evaluations reused | s saved | wall at {parallel} processes |",
             "|---|---|---|---|---|---|"]
    for p in parts:
        note = f" ({p['note']})" if p.get("note") else ""
        lines.append(f"| {p['part']}{note} | {p['processes']} | {p['recorded_s']:.0f} | {p['reused_before']} | "
                     f"{p['saved_s']:.0f} | {p['wall_s'] / 60:.1f} min |")
    total = sum(p["wall_s"] for p in parts)
    lines.append(f"| **all, warm starts cached** | | | | | **{total / 60:.0f} min** |")
    builds = {}
    for stamp in sorted((REPO / "artifacts").glob("*/mmpost_zoo.json")):
        record = json.loads(stamp.read_text())
        if record.get("build_seconds"):
            builds[record.get("zoo") or stamp.parent.name] = float(record["build_seconds"])
    if builds:
        lines.append(f"| warm-start builds, first run only ({', '.join(builds)}) | {len(builds)} | "
                     f"{sum(builds.values()):.0f} | | | +{sum(builds.values()) / 60:.1f} min |")
    verdict = "fits" if total <= 3600 else "does not fit"
    lines.append(f"\nWith cached warm starts the suite {verdict} 60 minutes on 2 cores by this estimate "
                 f"({total / 60:.0f} min).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (1 torch thread each)")
    parser.add_argument("--out", default="runs/benchmark-learning")
    parser.add_argument("--suite", choices=["shapes", "all", "world_models"], default="shapes")
    parser.add_argument("--report", default="learning",
                        help="results name: benchmarks/results/<report>.{md,json} (a partial run can write its own)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.suite == "world_models":
        run_scripts(WORLD_MODEL_SCRIPTS, args.seeds, started)
        return 0
    rows = shapes_rows(args.seeds, args.methods, REPO / args.out, args.parallel)
    text = write_report(rows, args.report, title=f"**shapes** (held-out accuracy, 256 questions, greedy; seeds {args.seeds})",
                        text=comparison_text(rows) + "\n\n" + BUDGET_NOTE + suite_budget_text(),
                        figures=args.report == "learning")  # a partial run's figures would replace the suite's
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
