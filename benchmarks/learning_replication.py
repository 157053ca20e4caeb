"""Two runs of `make bench-learning` side by side: does every verdict replicate?

    python benchmarks/learning_replication.py --earlier <results dir> --later benchmarks/results \
        --name learning_replication_s10

Reads each part's results JSON (learning.json, learning_vs_trl.json, ...) from both folders and writes
benchmarks/results/<name>.{md,json}: per row the warm start's held-out number, the 3-seed mean gain with its
standard error and whether it is >= 2 SE, in each run, and whether the verdict and the per-seed values agree; the TRL
control's after-training difference; PROPA's search − greedy. Runs of the same code differ across machines when their
warm starts or float kernels do (README, "Rebuilt warm starts do not always match"), so a replication is judged by
its verdicts, not its digits. Not a test.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO  # noqa: E402

PARTS = ["learning", "learning_vs_trl", "learning_modalities", "learning_audio", "learning_propa", "learning_rlir",
         "learning_world_env", "learning_flow"]


def part_rows(data: dict) -> list[dict]:
    """A results JSON's rows: the list under "rows", or the TRL control's {part: {mmpost, trl}} rows."""
    if isinstance(data.get("rows"), list):
        return data["rows"]
    return [side for sides in data.values() if isinstance(sides, dict)
            for name, side in sides.items() if name in ("mmpost", "trl") and isinstance(side, dict)]


def verdict(row: dict) -> str:
    return "yes" if row.get("significant") else "no"


def row_record(part: str, earlier: dict | None, later: dict | None) -> dict:
    def numbers(row):
        if row is None:
            return None
        return {"before": statistics.mean(row["before"]), "gain": row["gain_mean"], "se": row["gain_se"],
                "over_se": row["gain_over_se"], "significant": bool(row["significant"]), "gains": row["gains"]}

    a, b = numbers(earlier), numbers(later)
    return {"part": part, "label": (earlier or later)["label"], "earlier": a, "later": b,
            "same_verdict": bool(a and b and a["significant"] == b["significant"]),
            "same_per_seed": bool(a and b and a["gains"] == b["gains"] and a["before"] == b["before"])}


def trl_differences(data: dict) -> dict[str, tuple[float, float]]:
    """mmpost − TRL after training, with its standard error, per trainer pair (learning_vs_trl.json)."""
    return {part: (sides["comparison"]["after_difference"], sides["comparison"]["after_difference_se"])
            for part, sides in data.items() if isinstance(sides, dict) and "comparison" in sides}


def propa_search_minus_greedy(data: dict) -> dict[str, float]:
    """PROPA's inference strategies less greedy decoding, mean over seeds (learning_propa.json "inference")."""
    per_seed = [seed for seed in data.get("inference") or [] if isinstance(seed, dict) and "greedy" in seed]
    out = {}
    for seed in per_seed:
        for temperature, values in (seed.get("by_temperature") or {}).items():
            for strategy in ("best_of_4", "prm_mcts"):
                if isinstance(values.get(strategy), (int, float)):
                    out.setdefault(f"{strategy}, T = {temperature}", []).append(values[strategy] - seed["greedy"])
    return {k: statistics.mean(v) for k, v in out.items()}


def compare(earlier_dir: Path, later_dir: Path) -> dict:
    rows, trl, propa, missing = [], {}, {}, []
    for part in PARTS:
        paths = earlier_dir / f"{part}.json", later_dir / f"{part}.json"
        if not all(p.is_file() for p in paths):
            missing.append(part)
            continue
        a, b = (json.loads(p.read_text()) for p in paths)
        by_label = {r["label"]: r for r in part_rows(a)}
        later_rows = {r["label"]: r for r in part_rows(b)}
        for label in list(by_label) + [k for k in later_rows if k not in by_label]:
            rows.append(row_record(part, by_label.get(label), later_rows.get(label)))
        if part == "learning_vs_trl":
            trl = {"earlier": trl_differences(a), "later": trl_differences(b)}
        if part == "learning_propa":
            propa = {"earlier": propa_search_minus_greedy(a), "later": propa_search_minus_greedy(b)}
    return {"rows": rows, "trl_after_difference": trl, "propa_search_minus_greedy": propa, "missing_parts": missing}


def table(result: dict) -> str:
    def cell(n):
        return "-" if n is None else f"{n['gain']:+.3f} ({n['over_se']:.1f} SE, {'yes' if n['significant'] else 'no'})"

    def before(n):
        return "-" if n is None else f"{n['before']:.3f}"

    lines = ["| part | row | warm start, earlier → later | gain earlier (≥ 2 SE?) | gain later (≥ 2 SE?) | same verdict | "
             "same per-seed numbers |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['part']} | {r['label']} | {before(r['earlier'])} → {before(r['later'])} | {cell(r['earlier'])} "
                     f"| {cell(r['later'])} | {'yes' if r['same_verdict'] else '**no**'} | {'yes' if r['same_per_seed'] else 'no'} |")
    agree = sum(r["same_verdict"] for r in result["rows"])
    lines.append(f"\nVerdicts that agree: {agree} of {len(result['rows'])} rows.")
    if result["trl_after_difference"]:
        lines.append("\nmmpost − TRL, held-out after training (± its standard error):\n\n| trainer | earlier | later |\n|---|---|---|")
        for part, (value, se) in result["trl_after_difference"]["later"].items():
            old = result["trl_after_difference"]["earlier"].get(part)
            lines.append(f"| {part} | {old[0]:+.3f} ± {old[1]:.3f} | {value:+.3f} ± {se:.3f} |" if old else
                         f"| {part} | - | {value:+.3f} ± {se:.3f} |")
    if result["propa_search_minus_greedy"]:
        lines.append("\nPROPA's inference strategies − greedy on the PROPA policy (mean over seeds):\n\n"
                     "| strategy | earlier | later |\n|---|---|---|")
        for name, value in result["propa_search_minus_greedy"]["later"].items():
            old = result["propa_search_minus_greedy"]["earlier"].get(name)
            lines.append(f"| {name} | {'-' if old is None else f'{old:+.3f}'} | {value:+.3f} |")
    if result["missing_parts"]:
        lines.append(f"\nNot compared (a results file missing on one side): {', '.join(result['missing_parts'])}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--earlier", required=True, help="results folder of the first run")
    parser.add_argument("--later", default=str(REPO / "benchmarks" / "results"), help="results folder of the second run")
    parser.add_argument("--name", default="learning_replication")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--title", default="", help="a line on where each run came from, written above the table")
    args = parser.parse_args(argv)

    result = compare(Path(args.earlier), Path(args.later))
    text = (args.title + "\n\n" if args.title else "") + table(result) + "\n"
    (Path(args.results) / f"{args.name}.md").write_text(text)
    (Path(args.results) / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
