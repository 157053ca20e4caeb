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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO, Job, Row, mean_std, run_jobs, write_report  # noqa: E402

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
                        text=comparison_text(rows))
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
