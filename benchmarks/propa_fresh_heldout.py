"""PROPA policies on held-out questions no comparison was made on: greedy step-by-step accuracy of the warm start and
of each run's final policy on held-out questions [offset, offset + count) -- the benchmark's 64 held-out questions are
[0, 64), on which this session compared its variants. Per run the gain over the warm start, per seed, and for each
group of runs (the folders' parent, e.g. runs/propa_s7_rounds24/pool) mean ± std and SE over seeds.

    python benchmarks/propa_fresh_heldout.py runs/propa_s7_rounds24/pool/seed{0,1,2} --offset 64 --count 256
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main(argv=None) -> int:
    import torch

    from learning_propa import WARM, _task
    from learning_report import mean_std
    from propa_churn import greedy_right

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--offset", type=int, default=64)
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--name", default="learning_propa_s7_fresh_heldout")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    samples = _task(64).load("heldout", size=args.offset + args.count)[args.offset :]
    warm = statistics.mean(greedy_right(WARM, samples))
    print(f"warm start {warm:.4f}", flush=True)
    groups: dict[str, list[tuple[str, float]]] = {}
    for run in args.runs:
        final = max((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1])) / "model"
        accuracy = statistics.mean(greedy_right(final, samples))
        groups.setdefault(str(run.parent), []).append((run.name, accuracy))
        print(run, f"{accuracy:.4f}", flush=True)
    lines = [f"# PROPA on fresh held-out questions (held-out indices {args.offset}-{args.offset + args.count - 1}; "
             f"none used to compare settings); warm start greedy {warm:.3f}", "",
             "| runs | after (per seed) | gain (mean ± std) | per-seed gain | SE | gain / SE |", "|---|---|---|---|---|---|"]
    out = {"warm": warm, "offset": args.offset, "count": args.count, "groups": {}}
    for group, values in groups.items():
        gains = [a - warm for _, a in values]
        mean, std = mean_std(gains)
        se = std / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
        lines.append(f"| {group} | " + " / ".join(f"{a:.3f}" for _, a in values) + f" | {mean:+.3f} ± {std:.3f} | "
                     + " / ".join(f"{g:+.3f}" for g in gains) + f" | {se:.3f} | {mean / se if se else float('nan'):+.1f} |")
        out["groups"][group] = {"seeds": [n for n, _ in values], "after": [a for _, a in values], "gains": gains}
    text = "\n".join(lines)
    results = REPO / "benchmarks" / "results"
    (results / f"{args.name}.md").write_text(text + "\n")
    (results / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
