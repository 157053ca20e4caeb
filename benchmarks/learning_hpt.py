"""HPT on shapes with the RL term's normaliser as the official rule (the padded response width), against the earlier
recipe's literal 8192 (its row read back from benchmarks/results/learning_lr1e-3.json, not rerun).

    OMP_NUM_THREADS=1 python benchmarks/learning_hpt.py [--seeds 0 1 2] [--out runs/hpt-width] [--balance DIR]

The committed results came from (after `benchmarks/hpt_balance.py` with and without `--norm-constant 8192`):

    python benchmarks/learning_hpt.py --variants hpt_rl_only --balance runs/hpt-balance \
        --text benchmarks/results/learning_hpt_notes.md

Runs (or reads back, when finished with the same recipe) `recipes/hpt.yaml` for each seed from the shapes warm start,
100 steps, exactly as benchmarks/learning.py runs its HPT row, and writes benchmarks/results/learning_hpt.{md,json}.
`--balance DIR` adds benchmarks/hpt_balance.py's per-step measurements (RL and SFT gradient norms, SFT rows per
question kind) found under DIR. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO, RESULTS, Job, Row, SeedRun, run_jobs, write_report  # noqa: E402

EARLIER = "HPT, C = 8192 (earlier recipe; learning_lr1e-3.json, not rerun)"
# Diagnostic variants of the shipped recipe (--variants): slug -> (label, overrides).
VARIANTS = {
    "hpt_rl_only": ("HPT's RL part alone (switch_gate -1: no group switches to SFT)", ["algorithm.source_args={switch_gate: -1}"]),
}


def earlier_row() -> Row:
    """The shipped-until-now HPT row (norm_constant 8192) from the committed shapes results."""
    data = json.loads((RESULTS / "learning_lr1e-3.json").read_text())
    names = {f.name for f in fields(SeedRun)}
    runs = [SeedRun(**{k: v for k, v in run.items() if k in names}) for run in data["runs"]["HPT"]]
    stats = next(r for r in data["rows"] if r["label"] == "HPT")
    return Row(EARLIER, "hpt_C8192", runs, task="shapes", warm_start=stats["warm_start"], steps=stats["steps"])


def balance_text(folder: Path) -> str:
    lines = []
    for path in sorted(folder.glob("*/balance_summary.json")):
        summary = json.loads(path.read_text())
        lines.append(f"\n`{path.parent.name}` (benchmarks/hpt_balance.py, one seed, the run's own trajectory):\n")
        lines.append("| window | RL-term grad norm | SFT-term grad norm (steps with SFT rows) | steps with SFT rows "
                     "| RL tokens / step | SFT rows per kind | RL rows per kind | prompts per kind |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for window, s in summary.items():
            lines.append(f"| {window} ({s['steps']} steps) | {s['rl_grad_norm']:.4g} | {s['sft_grad_norm_steps_with_sft']:.4g} "
                         f"| {s['steps_with_sft_rows']} | {s['rl_tokens_per_step']:.1f} | {s['sft_rows_per_kind']} "
                         f"| {s['rl_rows_per_kind']} | {s['groups_per_kind']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", default="runs/hpt-width")
    parser.add_argument("--balance", default=None, help="folder of benchmarks/hpt_balance.py outputs")
    parser.add_argument("--report", default="learning_hpt")
    parser.add_argument("--variants", nargs="*", default=[], choices=list(VARIANTS))
    parser.add_argument("--text", default="", help="a markdown file whose text is appended (the diagnosis)")
    args = parser.parse_args(argv)

    from mmpost.config import load_config

    config = load_config(REPO / "recipes" / "hpt.yaml")
    out = REPO / args.out  # as benchmarks/learning.py, so its finished runs (same command) are read back
    jobs = [Job(key=s, recipe="hpt", seed=s, overrides=[], output_dir=out / "shapes" / "hpt" / f"seed{s}", reuse_before=True)
            for s in args.seeds]
    jobs += [Job(key=(v, s), recipe="hpt", seed=s, overrides=VARIANTS[v][1], output_dir=out / "shapes" / v / f"seed{s}",
                 reuse_before=True) for v in args.variants for s in args.seeds]
    runs = run_jobs(jobs, parallel=args.parallel)
    width = Row(f"HPT, C = padded width ({config.rollout.max_new_tokens})", "hpt", [runs[s] for s in args.seeds],
                task="shapes", warm_start=config.model.zoo or "", steps=config.train.steps)
    text = Path(args.text).read_text() if args.text else ""
    if args.balance:
        text += "\n\nThe two loss terms, measured per step:\n" + balance_text(Path(args.balance))
    variants = [Row(VARIANTS[v][0], v, [runs[(v, s)] for s in args.seeds], task="shapes",
                    warm_start=config.model.zoo or "", steps=config.train.steps) for v in args.variants]
    write_report([width, earlier_row(), *variants], args.report, text=text, figures=False,
                 title=f"**shapes, HPT** (held-out accuracy, 256 questions, greedy; seeds {args.seeds})")
    print((RESULTS / f"{args.report}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
