"""Which of the warm start's pass@k − greedy gap GRPO closed on digit_sum, and whether the rest was guessing (session 9;
labels read for the diagnosis only).

    python benchmarks/grpo_gap_diagnosis.py runs/s9/heldout_diag.json --out learning_grpo_s9_diagnosis

Reads one `benchmarks/mm_upt_diagnosis.py` output whose first model is the warm start (k samples per held-out prompt
at the training temperature) and writes benchmarks/results/OUT.{md,json}: the warm start's gap prompts (greedy wrong,
some sample right) split by whether its samples were right more often than guessing would be (a guesser drawing the
sum uniformly among the possible sums, or from the sums' true distribution, whichever is right more often on that
prompt's sum), and per later model how many of each it turned right, how many prompts it lost (by how many of the warm
start's samples were right on them), and how its greedy answers go wrong (a misread number, or a boxed sum that is not the sum of the numbers the answer itself read).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import write_results  # noqa: E402


def sum_distribution(count: int, low: int, high: int) -> dict[str, float]:
    """P(sum) of `count` digits drawn uniformly from [low, high] (as digit_sum draws them), keyed as answers are."""
    sums = Counter(sum(d) for d in itertools.product(range(low, high + 1), repeat=count))
    total = sum(sums.values())
    return {str(s): c / total for s, c in sorted(sums.items())}


def guessing_level(truth: str, distribution: dict[str, float]) -> float:
    """The per-sample accuracy of the better of two guessers on a prompt whose answer is `truth`: uniform among the
    possible sums (1/m), or drawing sums from their true distribution (P(truth))."""
    return max(1.0 / len(distribution), distribution.get(truth, 0.0))


def gap_kind(record: dict, distribution: dict[str, float]) -> str:
    """'solved' (greedy right), 'skill' (greedy wrong, samples right more often than guessing), 'guess' (greedy wrong,
    some sample right, no more often than guessing), 'unreached' (no sample right)."""
    if record["greedy"] == record["truth"]:
        return "solved"
    right = sum(a == record["truth"] for a in record["answers"]) / len(record["answers"])
    if right == 0:
        return "unreached"
    return "skill" if right > guessing_level(record["truth"], distribution) else "guess"


def transitions(reference: list[dict], later: list[dict], distribution: dict[str, float]) -> dict[str, dict[str, int]]:
    """For each kind of the reference's prompts: how many, and how many the later model's greedy answers right."""
    out: dict[str, dict[str, int]] = {k: {"prompts": 0, "right_after": 0} for k in ("solved", "skill", "guess", "unreached")}
    for before, after in zip(reference, later, strict=True):
        kind = gap_kind(before, distribution)
        out[kind]["prompts"] += 1
        out[kind]["right_after"] += after["greedy"] == after["truth"]
    return out


def by_right_samples(reference: list[dict], later: list[dict]) -> dict[str, dict[int, list[int]]]:
    """The reference's prompts by how many of its k samples were right, separately where its greedy answer was right
    and wrong: per count, [prompts, of which the later model's greedy answer is right]. A greedy answer right on a
    prompt whose samples are rarely right is a near tie, which a small update can flip either way."""
    out: dict[str, dict[int, list[int]]] = {"greedy_right": {}, "greedy_wrong": {}}
    for before, after in zip(reference, later, strict=True):
        side = out["greedy_right" if before["greedy"] == before["truth"] else "greedy_wrong"]
        cell = side.setdefault(sum(a == before["truth"] for a in before["answers"]), [0, 0])
        cell[0] += 1
        cell[1] += after["greedy"] == after["truth"]
    return {side: dict(sorted(cells.items())) for side, cells in out.items()}


def greedy_errors(records: list[dict]) -> dict[str, float]:
    """Shares of prompts whose greedy answer is wrong because it misread a number (the numbers it wrote are not the
    image's, as multisets) or, reading them right, boxed a sum that is not theirs."""
    n = len(records)
    misread = sum(r["greedy"] != r["truth"] and (r["greedy_read"] is None or sorted(r["greedy_read"]) != sorted(r["numbers"]))
                  for r in records)
    bad_sum = sum(r["greedy"] != r["truth"] and r["greedy_read"] is not None and sorted(r["greedy_read"]) == sorted(r["numbers"])
                  for r in records)
    return {"greedy_wrong": sum(r["greedy"] != r["truth"] for r in records) / n, "misread": misread / n, "read_right_sum_wrong": bad_sum / n}


def markdown(report: dict) -> str:
    kinds = ("solved", "skill", "guess", "unreached")
    names = {"solved": "greedy right", "skill": "gap, above guessing", "guess": "gap, at guessing", "unreached": "no sample right"}
    reference = report["reference"]
    lines = [f"Warm start `{reference}`'s held-out prompts by kind (k = {report['k']} samples at T {report['temperature']:g}; "
             f"guessing = the better of a uniform guess among {report['choices']} sums and a draw from the sums' true "
             "distribution), and how many of each every model answers right (greedy):", "",
             "| model | " + " | ".join(f"{names[k]} ({report['counts'][k]})" for k in kinds) + " | greedy wrong | misread | "
             "read right, sum wrong |", "|---" * (len(kinds) + 4) + "|"]
    for name, m in report["models"].items():
        cells = [f"{m['transitions'][k]['right_after']}" for k in kinds]
        e = m["errors"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {e['greedy_wrong']:.3f} | {e['misread']:.3f} | "
                     f"{e['read_right_sum_wrong']:.3f} |")
    counts = sorted({c for m in report["models"].values() for side in m["by_right_samples"].values() for c in side})
    lines += ["", f"By how many of the warm start's {report['k']} samples were right: prompts whose greedy answer the model "
              "gets right, of those the warm start's greedy got right (R) and wrong (W):", "",
              "| model | " + " | ".join(f"{c}/{report['k']} right: R / W" for c in counts) + " |", "|---" * (len(counts) + 1) + "|"]
    for name, m in report["models"].items():
        cells = []
        for c in counts:
            right, wrong = (m["by_right_samples"][side].get(c, [0, 0]) for side in ("greedy_right", "greedy_wrong"))
            cells.append(f"{right[1]}/{right[0]} / {wrong[1]}/{wrong[0]}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("diagnosis", type=Path, help="mm_upt_diagnosis.py output; its first model is the reference")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--out", required=True, help="results name: benchmarks/results/<out>.{md,json}")
    args = parser.parse_args(argv)

    from mmpost.tasks.mm_upt.task import DigitSumTask

    data = json.loads(args.diagnosis.read_text())
    report, records = data["report"], data["records"]
    options = DigitSumTask(**{k: v for k, v in report["task_args"].items() if k in ("count", "low", "high")})
    distribution = sum_distribution(options.count, options.low, options.high)
    names = list(records)
    reference = records[names[0]][args.split]
    out = {"reference": names[0], "k": report["k"], "temperature": report["temperature"], "choices": len(distribution),
           "counts": dict(Counter(gap_kind(r, distribution) for r in reference)), "models": {}}
    for kind in ("solved", "skill", "guess", "unreached"):
        out["counts"].setdefault(kind, 0)
    for name in names:
        later = records[name][args.split]
        out["models"][name] = {"transitions": transitions(reference, later, distribution), "errors": greedy_errors(later),
                               "by_right_samples": by_right_samples(reference, later)}
    text = markdown(out)
    write_results(args.out, text, out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
