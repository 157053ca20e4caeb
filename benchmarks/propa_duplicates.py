"""PROPA with duplicate step texts merged (or their conflicting groups dropped) in the step-level groups: the labels'
conflict rate before/after on the same trees, then the held-out 3-seed learning check at the settings of
`benchmarks/learning_propa.py` (600-step warm start, lr 3e-4, 8 rounds x 8 questions, 8 MCTS iterations, step cap 6,
64 held-out questions), one row per group construction.

    python benchmarks/propa_duplicates.py --options merge drop --name learning_propa_s7_duplicates

"keep" is the official construction (its row is `learning_propa.md`'s PROPA row, read back with `--baseline`);
"merge", "pool" and "drop" are ours (`mmpost.search.step_groups`, option `duplicate_steps`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from learning_report import Job, Row, add_run_arguments, run_jobs, write_report  # noqa: E402
from learning_propa import WARM, ensure_warm_start  # noqa: E402
from propa_group_labels import group_label_stats  # noqa: E402

STAT_COLUMNS = ("groups", "members", "unvisited_members", "groups_spread_only_from_unvisited", "groups_one_text_two_labels",
                "duplicate_members")


def stats_line(option: str, source: str, stats: dict) -> str:
    return (f"| {option} | {source} | {stats['groups']} | {stats['members']} | {stats['unvisited_members']:.2f} | "
            f"{stats['groups_spread_only_from_unvisited']:.2f} | {stats['groups_one_text_two_labels']:.2f} | "
            f"{stats['duplicate_members']:.2f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "propa_duplicates")
    parser.add_argument("--options", nargs="+", default=["merge"], choices=["keep", "merge", "pool", "drop"])
    parser.add_argument("--name", default="learning_propa_s7_duplicates")
    parser.add_argument("--baseline", type=Path, default=REPO / "runs" / "learning_propa_ws600_lr3e-4" / "propa",
                        help="the official-construction runs (seedN folders with trees/) for the before/after counts")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--heldout", type=int, default=64)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ensure_warm_start()
    # The same overrides as learning_propa.py's "propa" method, plus the group construction.
    common = [f"model.path={WARM}", "model.zoo=null", f"data.prompts_per_step={args.prompts}",
              f"data.task_args.heldout_size={args.heldout}", f"data.task_args.max_steps={args.max_steps}",
              "algorithm.kl_coef=0.0", "train.save_every=0", "optim.lr=3e-4", "algorithm.source=propa", *args.overrides]
    jobs = []
    for option in args.options:
        for seed in args.seeds:
            output = args.out / option / f"seed{seed}"
            source = (f"algorithm.source_args={{iterations: {args.iterations}, num_children: 4, max_depth: {args.max_steps}, "
                      f"system_prompt: '', duplicate_steps: {option}, tree_dir: {output / 'trees'}}}")
            jobs.append(Job(key=(option, seed), recipe="propa", overrides=common + [source], output_dir=output, seed=seed,
                            steps=args.rounds))
    runs = run_jobs(jobs, parallel=args.parallel)
    rows = [Row(f"PROPA, duplicate_steps={option}", f"propa_{option}", [runs[(option, s)] for s in args.seeds],
                metric="held-out accuracy (greedy, step-wise)", task="propa_digits", warm_start="tiny-qwen2.5-vl-propa",
                steps=args.rounds) for option in args.options]
    baseline = [args.baseline / f"seed{s}" for s in args.seeds]
    counts = {}
    lines = ["Step-level group labels (`benchmarks/propa_group_labels.py`): the official runs' trees counted under each "
             "construction (same trees), and each run's own trees under its own construction:", "",
             "| construction | trees | groups | members | unvisited members | groups whose spread is only unvisited children | "
             "groups where one text gets two labels | duplicate texts among members |", "|---|---|---|---|---|---|---|---|"]
    for option in ["keep", *[o for o in args.options if o != "keep"]]:
        counts[f"official_trees/{option}"] = group_label_stats(baseline, option)
        lines.append(stats_line(option, "official runs' (keep)", counts[f"official_trees/{option}"]))
    for option in args.options:
        counts[f"own_trees/{option}"] = group_label_stats([args.out / option / f"seed{s}" for s in args.seeds], option)
        lines.append(stats_line(option, "its own run's", counts[f"own_trees/{option}"]))
    cpu = {f"{o}/{s}": runs[(o, s)].cpu_seconds for o in args.options for s in args.seeds}
    lines += ["", f"{args.rounds} rounds x {args.prompts} questions, {args.iterations} MCTS iterations, k = 4, step cap "
              f"{args.max_steps}, lr 3e-4; {args.heldout} held-out questions; seeds {args.seeds}; training CPU s per run "
              + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if v is not None)
              + f"; this invocation {time.perf_counter() - started:.0f} s wall on a shared 2-core machine."]
    body = write_report(rows, args.name, title="**PROPA, duplicate step texts in a group** (ours; `recipes/propa.yaml`, "
                        f"{args.rounds} rounds)", results=args.results, text="\n".join(lines),
                        extra={"label_counts": counts, "cpu_seconds": cpu}, default_name="propa_duplicates")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
