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
BUDGET_NOTE = ("`make bench-learning` end to end on a quiet 2-core machine, estimated per part (benchmarks/learning.py "
               "`suite_budget`): each training process at its CPU seconds (1 torch thread: its wall time with a core to "
               "itself), measured where a part was rerun with CPU accounting (`learning.py --time-script`, "
               "results/*_timing.json, the same numbers bit for bit), else its recorded wall seconds on the shared "
               "machine × the measured CPU/wall ratio; less what reusing the warm start's held-out evaluation saves "
               "(benchmarks/learning_job.py, profiled by benchmarks/learning_profile.py); each part's processes in run "
               "order on 2 lanes; a timed part's own evaluation stages and PROPA's evaluation stage counted:\n\n")
WORLD_MODEL_SCRIPTS = ["learning_rlir.py", "learning_world_env.py"]


def shapes_rows(seeds: list[int], methods: list[str], out: Path, parallel: int, overrides: list[str] = ()) -> list[Row]:
    from mmpost.config import load_config
    from mmpost.model import ensure_model_folder

    overrides = list(overrides)  # a variant of every method (e.g. optim.lr=5e-4); its rows are labelled with them
    configs = {m: load_config(REPO / "recipes" / f"{m}.yaml", overrides) for m in methods}
    for config in configs.values():  # built once (with a progress bar), cached for every run
        ensure_model_folder(config.model)
    # The warm start's held-out evaluation is the same for every method: computed once per seed (reuse_before).
    jobs = [Job(key=(m, s), recipe=m, seed=s, overrides=overrides, output_dir=out / "shapes" / m / f"seed{s}", reuse_before=True)
            for m in methods for s in seeds]
    runs = run_jobs(jobs, parallel=parallel)
    label = (lambda m: f"{METHODS[m]}, {' '.join(overrides)}") if overrides else (lambda m: METHODS[m])
    return [Row(label(m), m, [runs[(m, s)] for s in seeds], task="shapes", warm_start=configs[m].model.zoo or "",
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


# Recorded wall seconds of a training process -> its CPU seconds (1 torch thread: a quiet machine's wall seconds).
# The results files written before run_jobs recorded CPU seconds hold only wall seconds, taken on the shared machine;
# the ratio is measured by rerunning parts with CPU accounting (<part>_timing.json, read back by
# measured_wall_to_cpu): the shapes SFT and GRPO runs took 0.17 of their recorded wall seconds (288 of 1660 s, the
# same numbers bit for bit). This default is used only when no rerun is there.
WALL_TO_CPU = 0.17
TIMED = {"learning": "learning_timing", "learning_audio": "learning_audio_timing", "learning_flow": "learning_flow_timing",
         "learning_world_env": "learning_world_env_timing", "learning_rlir": "learning_rlir_timing"}


def run_steps(record) -> int | None:
    """The training steps a results-JSON run record says it ran (None where it does not say)."""
    summary = record.get("summary") if isinstance(record, dict) else None
    steps = summary.get("steps") if isinstance(summary, dict) else None
    return steps if isinstance(steps, int) else None


def same_run(recorded, timed) -> bool:
    """Whether a timing rerun's record can stand for a recorded run: not when the two ran different step counts
    (learning_world_env_timing.json's world-model runs were 20 steps against the committed 8)."""
    a, b = run_steps(recorded), run_steps(timed)
    return a is None or b is None or a == b


def timing_matches(data: dict, timed: dict | None) -> bool:
    """Whether every run of a timing rerun trained the step count of the recorded run it stands for."""
    recorded, reruns = data.get("runs"), (timed or {}).get("runs")
    if not (isinstance(recorded, dict) and isinstance(reruns, dict)):
        return True
    return all(same_run(old, new) for label, values in reruns.items() if isinstance(values, list)
               for old, new in zip(recorded.get(label) or [], values))


def measured_wall_to_cpu(results: Path) -> tuple[float, dict[str, float]]:
    """CPU seconds / recorded wall seconds of the same processes, per part rerun with CPU accounting, and pooled."""
    import json

    per_part, cpu_total, wall_total = {}, 0.0, 0.0
    for part, timed_name in TIMED.items():
        recorded, timed = results / f"{part}.json", results / f"{timed_name}.json"
        if not (recorded.is_file() and timed.is_file()):
            continue
        recorded_runs, timed_runs = json.loads(recorded.read_text())["runs"], json.loads(timed.read_text())["runs"]
        cpu = wall = 0.0
        for label, values in timed_runs.items():
            for index, run in enumerate(values if isinstance(values, list) else []):
                old = (recorded_runs.get(label) or [])[index:index + 1] if isinstance(recorded_runs, dict) else []
                # A recorded run with its own CPU seconds needs no ratio (and its wall is not the shared machine's).
                if old and isinstance(run, dict) and isinstance(run.get("cpu_seconds"), (int, float)) \
                        and same_run(old[0], run) and not (isinstance(old[0], dict) and "cpu_seconds" in old[0]):
                    cpu, wall = cpu + run["cpu_seconds"], wall + float(old[0]["seconds"] if isinstance(old[0], dict) else old[0])
        if wall:
            per_part[part] = cpu / wall
            cpu_total, wall_total = cpu_total + cpu, wall_total + wall
    return (cpu_total / wall_total if wall_total else WALL_TO_CPU), per_part


def per_process_seconds(data: dict, labels: list[str] | None = None, overlay: dict | None = None,
                        factor: float = WALL_TO_CPU) -> list[tuple[float, str]]:
    """Each training process of a results JSON (rows in `labels` only, when given) as (seconds, how): its CPU
    seconds where recorded (run_jobs records them), from `overlay` (a rerun of some rows with CPU accounting) where
    it has the row, else its recorded wall seconds × `factor`."""
    def one(record, timed=None):
        if isinstance(timed, dict) and isinstance(timed.get("cpu_seconds"), (int, float)):
            return float(timed["cpu_seconds"]), "measured CPU"
        if isinstance(record, dict) and isinstance(record.get("cpu_seconds"), (int, float)):
            return float(record["cpu_seconds"]), "measured CPU"
        wall = record.get("seconds") if isinstance(record, dict) else record
        return (float(wall) * factor, "recorded wall × %.2f" % factor) if isinstance(wall, (int, float)) else None

    runs, timed_runs = data.get("runs"), (overlay or {}).get("runs") or {}
    out = []
    if isinstance(runs, dict):
        for label, values in runs.items():
            if isinstance(values, list) and (labels is None or label in labels):
                timed = timed_runs.get(label) if isinstance(timed_runs, dict) else None
                out += [one(r, timed[i] if timed and i < len(timed) and same_run(r, timed[i]) else None)
                        for i, r in enumerate(values)]
    elif isinstance(runs, list):
        out = [one(r) for r in runs if isinstance(r, dict)]
    return [v for v in out if v is not None]


def profiled_reuse_saving(profile: dict, recipe: str) -> float:
    """CPU seconds a reused "before" evaluation saves, from learning_profile.py's entry for `recipe`: the evaluation
    (greedy + sampled) less the extra run build the reusing job makes to evaluate its checkpoint after training
    (benchmarks/learning_job.py). Measured for GRPO on shapes: 9.6 - 6.8 = 2.8 CPU s, against 3.7 by timing both
    paths whole (mmpost train 66.5 CPU s, the reusing job 62.8). Never negative (a profile whose build phase also
    built the warm start counts 0)."""
    entry = profile.get(f"{recipe} train.threads=1") or next((v for k, v in profile.items() if k.split()[0] == recipe), None)
    if not entry:
        return 0.0
    before = sum(p["cpu_s"] for p in entry["phases"] if p["phase"].startswith("before:"))
    build = sum(p["cpu_s"] for p in entry["phases"] if p["phase"].startswith("config, warm-start load"))
    return max(0.0, before - build)


def suite_budget(results: Path = REPO / "benchmarks" / "results", parallel: int = 2,
                 factor: float | None = None) -> list[dict]:
    """`make bench-learning`'s parts as the suite runs them now: each process's seconds on a quiet machine (its CPU
    seconds, see per_process_seconds), less what reusing the held-out evaluation before training saves
    (profiled_reuse_saving) where the seconds predate the reuse, scheduled in run order on `parallel`
    lanes; PROPA's evaluation stage (its recorded wall at 2 processes × the factor) added. `factor`: recorded wall
    seconds -> CPU seconds where no CPU seconds were recorded (default: measured_wall_to_cpu's pooled ratio)."""
    import json

    f = measured_wall_to_cpu(results)[0] if factor is None else factor

    def load(name):
        path = results / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def how(values):
        return ", ".join(sorted({h for _, h in values}))

    profile = load("learning_profile") or {}
    parts = []
    shapes = load("learning")
    if shapes:
        # 5 methods × 3 seeds in method order; the first method's run of each seed evaluates the warm start.
        before = profiled_reuse_saving(profile, "grpo")
        values = per_process_seconds(shapes, overlay=load("learning_timing"), factor=f)
        adjusted = [v if i < 3 or h == "measured CPU" else max(0.0, v - before) for i, (v, h) in enumerate(values)]
        saved = sum(v - a for (v, _), a in zip(values, adjusted))
        parts.append({"part": "learning (shapes: SFT, GRPO, ViSurf, CHORD, HPT)", "processes": len(values),
                      "seconds": sum(adjusted), "how": how(values), "reused_before": max(0, len(values) - 3),
                      "saved_s": saved, "wall_s": lane_wall(adjusted, parallel)})
    trl = load("learning_vs_trl")
    if trl:
        # mmpost's side is learning.py's GRPO and SFT runs (same folders, commands and fingerprints): read back, not rerun.
        # TRL's side: its training (steps × recorded s/step × f) and the evaluation of its model after
        # training (profile); the warm start's numbers are the mmpost runs' (same key).
        seconds = []
        for part, sides in trl.items():
            side = sides.get("trl", {})
            entry = profile.get(f"{part} train.threads=1") or profile.get(part) or {}
            after = sum(p["cpu_s"] for p in entry.get("phases", []) if p["phase"].startswith("after:"))
            seconds += [side["seconds_per_step"] * side["steps"] * f + after for _ in side.get("seeds", [])]
        parts.append({"part": "learning_vs_trl (TRL side; mmpost side read back from learning)", "processes": len(seconds),
                      "seconds": sum(seconds), "how": f"recorded s/step × {f:.2f} + profiled evaluation",
                      "reused_before": len(seconds), "saved_s": 0.0, "wall_s": lane_wall(seconds, parallel)})
    modalities = load("learning_modalities")
    if modalities:
        from learning_modalities import DEFAULT_GROUPS, GROUPS

        adjusted, values_all, saved, reused, seen = [], [], 0.0, 0, set()
        for name in DEFAULT_GROUPS:
            group = GROUPS[name]
            values = per_process_seconds(modalities, [group.label], factor=f)
            values_all += values
            before = profiled_reuse_saving(profile, group.recipe)
            share = group.recipe in seen  # MM-UPT's two learning rates start from one warm start
            seen.add(group.recipe)
            for v, h in values:
                cut = before if share and h != "measured CPU" else 0.0
                reused += int(share)
                saved += cut
                adjusted.append(max(0.0, v - cut))
        parts.append({"part": f"learning_modalities ({', '.join(DEFAULT_GROUPS)})", "processes": len(adjusted),
                      "seconds": sum(adjusted), "how": how(values_all), "reused_before": reused, "saved_s": saved,
                      "wall_s": lane_wall(adjusted, parallel)})
    timed_parts = load("learning_timing_parts") or {}
    for name in ("learning_audio", "learning_rlir", "learning_world_env", "learning_flow"):
        data = load(name)
        if data:
            values = per_process_seconds(data, overlay=load(f"{name}_timing"), factor=f)
            seconds = [v for v, _ in values]
            part = {"part": name, "processes": len(values), "seconds": sum(seconds), "how": how(values),
                    "reused_before": 0, "saved_s": 0.0, "wall_s": lane_wall(seconds, parallel)}
            timed = timed_parts.get(name)
            if timed:
                # The script's own evaluation stages (outside the training processes), pooled `parallel` at a time.
                stage = max(0.0, timed["cpu_s"] - timed["jobs_cpu_s"] - timed.get("warm_start_builds_s", 0.0))
                part["wall_s"] += stage / parallel
                part["note"] = (f"timed whole: {timed['cpu_s']:.0f} CPU s, of which {stage:.0f} in its evaluation stages"
                                if timing_matches(data, load(f"{name}_timing")) else
                                f"its evaluation stages {stage:.0f} CPU s, from a timed run of other step counts")
            else:
                part["note"] = "its evaluation stages outside the training processes not counted"
            parts.append(part)
    propa = load("learning_propa")
    if propa:
        seconds = [float(v) * f for v in (propa.get("training_run_seconds") or {}).values()]
        stage = f * sum(float(propa.get("wall_seconds", {}).get(k, 0.0)) for k in ("sampled_chains", "inference"))
        parts.append({"part": "learning_propa (training, then its evaluation stage)", "processes": len(seconds),
                      "seconds": sum(seconds), "how": f"recorded wall × {f:.2f}", "reused_before": 0,
                      "saved_s": 0.0, "wall_s": lane_wall(seconds, parallel) + stage,
                      "note": f"evaluation stage {stage / 60:.1f} min at 2 processes"})
    return parts


def profile_text(results: Path = REPO / "benchmarks" / "results") -> str:
    """learning_profile.json as a table: where one run's CPU seconds go, phase by phase (benchmarks/learning_profile.py)."""
    import json

    path = results / "learning_profile.json"
    if not path.is_file():
        return ""
    lines = ["| run (recipe, overrides) | imports | warm-start load + build_run | before: greedy | before: sampled (pass@k) "
             "| training, per step (steps) | after: greedy | after: sampled | diagnostics share of a step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in json.loads(path.read_text()).items():
        phases = [p["cpu_s"] for p in entry["phases"]]
        parts = entry.get("wall_s_per_step_by_part") or {}
        share = (f"{parts['perf/diagnostics_s'] / parts['perf/step_s']:.0%}" if parts.get("perf/step_s") and
                 "perf/diagnostics_s" in parts else "-")
        lines.append(f"| {name} | {phases[0]:.1f} | {phases[1]:.1f} | {phases[2]:.1f} | {phases[3]:.1f} | "
                     f"{entry['cpu_s_per_step']:.2f} ({entry['recipe_steps']}) | {phases[5]:.1f} | {phases[6]:.1f} | {share} |")
    return ("CPU seconds of one run by phase (benchmarks/learning_profile.py, 1 torch thread, on the shared machine; "
            "a build phase above 20 s includes building the warm start):\n\n" + "\n".join(lines))


def suite_budget_text(results: Path = REPO / "benchmarks" / "results", parallel: int = 2) -> str:
    """The estimate as a table (see suite_budget), with the warm-start builds listed apart (cached after one build)."""
    import json

    pooled, per_part = measured_wall_to_cpu(results)
    parts = suite_budget(results, parallel, pooled)
    lines = [f"| part | processes | process seconds (quiet machine) | from | before-evaluations reused | s saved by reuse "
             f"| wall at {parallel} processes |", "|---|---|---|---|---|---|---|"]
    for p in parts:
        note = f" ({p['note']})" if p.get("note") else ""
        lines.append(f"| {p['part']}{note} | {p['processes']} | {p['seconds']:.0f} | {p['how']} | {p['reused_before']} | "
                     f"{p['saved_s']:.0f} | {p['wall_s'] / 60:.1f} min |")
    total = sum(p["wall_s"] for p in parts)
    lines.append(f"| **all, warm starts cached** | | | | | | **{total / 60:.0f} min** |")
    builds = {}
    for stamp in sorted((REPO / "artifacts").glob("*/mmpost_zoo.json")):
        record = json.loads(stamp.read_text())
        if record.get("build_seconds"):
            builds[record.get("zoo") or stamp.parent.name] = float(record["build_seconds"])
    if builds:
        lines.append(f"| warm-start builds, first run only ({', '.join(builds)}) | {len(builds)} | "
                     f"{sum(builds.values()):.0f} | recorded build wall | | | +{sum(builds.values()) / 60:.1f} min |")
    lines.append("\nNot in the table: the World-Env world model and reflector (built once into artifacts/ like the warm "
                 "starts; the world model alone took over 8 CPU min on the shared machine) and the RLIR and World-Env "
                 "scripts' own evaluation stages outside their training processes (not timed whole).")
    verdict = "fits within" if total <= 3600 else "does not fit"
    measured = ", ".join(f"{part} {ratio:.2f}" for part, ratio in per_part.items()) or "none"
    worst = max(per_part.values(), default=pooled)
    high = sum(p["wall_s"] for p in suite_budget(results, parallel, worst))
    measured_run = results / "learning_suite_wall.json"
    if measured_run.is_file():
        run = json.loads(measured_run.read_text())
        parts_text = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in run["parts_wall_s"].items())
        lines.append(f"\n**Measured** (learning_suite_wall.json, finished {run['finished']}, {run['cpus']} CPUs): one "
                     f"`--suite all` run took {run['wall_s'] / 60:.1f} min wall with its warm starts cached ({parts_text} "
                     "min). The estimate above predates that measurement: its rows marked \"recorded wall × f\" scale "
                     "wall seconds as if recorded on the loaded shared machine, which undercounts parts whose results "
                     "a quiet run wrote (PROPA, the TRL side).")
    lines.append(f"\nRecorded wall → CPU seconds, measured by rerunning parts with CPU accounting: {measured} "
                 f"(pooled {pooled:.2f}, used where a process has no CPU seconds). With cached warm starts the suite "
                 f"{verdict} 60 minutes on a quiet 2-core machine by this estimate ({total / 60:.0f} min; "
                 f"{high / 60:.0f} min if every unmeasured process ran at the highest measured ratio, {worst:.2f}).")
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
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="key=value overrides for every method (a variant: use its own --out and --report)")
    parser.add_argument("--time-script", metavar="SCRIPT", help="time one part of the suite whole (see time_script)")
    parser.add_argument("--refresh-budget", action="store_true", help="only rewrite learning.md's budget section")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.refresh_budget:
        refresh_budget()
        return 0
    if args.time_script:
        time_script(args.time_script, args.seeds)
        return 0
    if args.suite == "world_models":
        run_scripts(WORLD_MODEL_SCRIPTS, args.seeds, started)
        return 0
    if args.overrides and (args.report == "learning" or args.out == "runs/benchmark-learning"):
        parser.error("--overrides is a variant: give it its own --out and --report")
    rows = shapes_rows(args.seeds, args.methods, REPO / args.out, args.parallel, args.overrides)
    text = write_report(rows, args.report, title=f"**shapes** (held-out accuracy, 256 questions, greedy; seeds {args.seeds})",
                        text=comparison_text(rows) + "\n\n" + budget_section(),
                        default_name=parser.get_default("report"))  # a variant's figures are named after its report
    print(text, flush=True)
    print(f"shapes: {time.perf_counter() - started:.0f} s", flush=True)
    if args.suite == "all":
        walls = {"learning.py (shapes)": round(time.perf_counter() - started, 1)}
        walls.update(run_scripts(SUITE_SCRIPTS, args.seeds, started))
        record_suite_wall(walls)
    return 0


def record_suite_wall(walls: dict[str, float], results: Path = REPO / "benchmarks" / "results") -> dict:
    """Write results/learning_suite_wall.json: the wall seconds of each part of one `--suite all` run, as measured,
    with the machine's core count and load (a timing taken beside other work says so)."""
    import json
    import os
    import platform

    record = {"parts_wall_s": walls, "wall_s": round(sum(walls.values()), 1), "cpus": os.cpu_count(),
              "load_average_at_end": [round(v, 2) for v in os.getloadavg()], "machine": platform.machine(),
              "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    (results / "learning_suite_wall.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def budget_section() -> str:
    return BUDGET_NOTE + suite_budget_text() + "\n\n" + profile_text()


def refresh_budget(path: Path = REPO / "benchmarks" / "results" / "learning.md") -> None:
    """Rewrite the budget section at the end of learning.md from the results files as they are now (the shapes
    table above it is left as it is)."""
    text = path.read_text()
    start = text.find(BUDGET_NOTE[:30])
    path.write_text((text[:start] if start >= 0 else text.rstrip() + "\n\n") + budget_section() + "\n")


def time_script(script: str, seeds: list[int], results: Path = REPO / "benchmarks" / "results") -> dict:
    """Run one part of the suite whole, one process at a time, into its own run and results folders (the shared
    results files are not touched), and record its CPU seconds: all processes' together (training runs and the
    script's own evaluation stages) and the training runs' (run_jobs's per-process CPU). Writes
    results/<part>_timing.json (its results JSON: per-process CPU seconds, read by suite_budget) and its entry in
    results/learning_timing_parts.json."""
    import json
    import resource
    import shutil
    import tempfile

    name = script.replace(".py", "")
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}-timing-"))
    def stamps():
        return {str(p): p.stat().st_mtime for p in (REPO / "artifacts").glob("*/mmpost_zoo.json")}

    built_before = stamps()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begun = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--seeds", *map(str, seeds), "--parallel", "1",
                    "--out", str(REPO / "runs" / "timing" / name), "--results", str(scratch)], cwd=REPO, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads((scratch / f"{name}.json").read_text())
    jobs = [r["cpu_seconds"] for runs in data.get("runs", {}).values() if isinstance(runs, list) for r in runs
            if isinstance(r, dict) and isinstance(r.get("cpu_seconds"), (int, float))]
    # Warm starts built during the timing (not cached yet): their recorded build seconds, counted apart.
    built = sum(float(json.loads(Path(path).read_text()).get("build_seconds") or 0.0) for path, mtime in stamps().items()
                if built_before.get(path) != mtime)
    entry = {"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "jobs_cpu_s": sum(jobs),
             "warm_start_builds_s": built,
             "jobs": len(jobs), "wall_s": time.perf_counter() - begun, "parallel": 1, "seeds": seeds,
             "machine": "shared 2-core machine (other sessions' work running)"}
    shutil.copy(scratch / f"{name}.json", results / f"{name}_timing.json")
    parts_file = results / "learning_timing_parts.json"
    stored = json.loads(parts_file.read_text()) if parts_file.is_file() else {}
    stored[name] = entry
    parts_file.write_text(json.dumps(stored, indent=1))
    print(f"{script}: {entry}", flush=True)
    return entry


def run_scripts(scripts: list[str], seeds: list[int], started: float) -> dict[str, float]:
    walls = {}
    for script in scripts:
        path = REPO / "benchmarks" / script
        if not path.is_file():
            print(f"(skipping {script}: not present)", flush=True)
            continue
        begun = time.perf_counter()
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(path), "--seeds", *map(str, seeds)], cwd=REPO, check=True)
        walls[script] = round(time.perf_counter() - begun, 1)
        print(f"{script}: {walls[script]:.0f} s", flush=True)
    print(f"whole suite: {time.perf_counter() - started:.0f} s", flush=True)
    return walls


if __name__ == "__main__":
    sys.exit(main())
