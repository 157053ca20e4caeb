"""How long the command line takes to answer: `--help`, config errors, `list`, `validate`.

    python benchmarks/cli_latency.py                 # 5 rounds of every command, alternating
    python benchmarks/cli_latency.py --rounds 3

Each command is a fresh `mmpost` process (what a user waits for, interpreter start included); commands
alternate within each round so machine load spreads over all of them. Reports median, min and max wall seconds
per command and the load average before and after. Goals (issue #14): `--help` and config errors under 1 s,
`list` and `validate` under 3 s on a loaded 2-core machine. Writes `benchmarks/results/cli_latency.{md,json}`.
Not a test: the numbers depend on the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MMPOST = [sys.executable, "-m", "mmpost.cli"]

COMMANDS = {
    "mmpost --help": (["--help"], 0, 1.0),
    "mmpost train --help": (["train", "--help"], 0, 1.0),
    "mmpost train (no recipe: lists them)": (["train"], 0, 1.0),
    "mmpost train visurff (recipe typo)": (["train", "visurff"], 2, 1.0),
    "mmpost train visurf optim.lrr=1 (key typo)": (["train", "visurf", "optim.lrr=1"], 2, 1.0),
    "mmpost train visurf algorithm.advantage=grp (name typo)": (["train", "visurf", "algorithm.advantage=grp"], 2, 3.0),
    "mmpost list": (["list"], 0, 3.0),
    "mmpost list rewards": (["list", "rewards"], 0, 3.0),
    "mmpost validate visurf": (["validate", "visurf"], 0, 3.0),
    "mmpost validate grpo --explain": (["validate", "grpo", "--explain"], 0, 3.0),
    "mmpost validate visurf --deep (imports everything)": (["validate", "visurf", "--deep"], 0, None),
}


def run_once(args: list[str], expected: int) -> float:
    start = time.perf_counter()
    result = subprocess.run(MMPOST + args, capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    if result.returncode != expected:
        raise SystemExit(f"`mmpost {' '.join(args)}` exited {result.returncode} (expected {expected}):\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for round_index in range(options.rounds):
        for name, (args, expected, _) in COMMANDS.items():
            times[name].append(run_once(args, expected))
        print(f"round {round_index + 1}/{options.rounds} done", flush=True)
    load_after = os.getloadavg()
    rows = []
    for name, (_, _, goal) in COMMANDS.items():
        values = times[name]
        median = statistics.median(values)
        rows.append({"command": name, "median_s": round(median, 3), "min_s": round(min(values), 3),
                     "max_s": round(max(values), 3), "goal_s": goal, "met": None if goal is None else median < goal,
                     "runs": len(values)})
    report = {"rows": rows, "rounds": options.rounds, "load_average_before": load_before, "load_average_after": load_after,
              "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli_latency.json").write_text(json.dumps(report, indent=1))
    lines = ["| command | median s | min s | max s | goal | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        goal = "-" if row["goal_s"] is None else f"< {row['goal_s']:g} s"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        lines.append(f"| `{row['command']}` | {row['median_s']:.2f} | {row['min_s']:.2f} | {row['max_s']:.2f} | {goal} | {met} |")
    lines.append("")
    lines.append(f"{options.rounds} rounds, commands alternating; {os.cpu_count()} cores; load average (1/5/15 min) "
                 f"{'/'.join(f'{v:.1f}' for v in load_before)} before, {'/'.join(f'{v:.1f}' for v in load_after)} after.")
    (RESULTS / "cli_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
