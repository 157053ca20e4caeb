"""The MM-UPT warm-start screen: which SFT checkpoint x temperature gives the majority vote a margin over greedy on
prompts the warm start never saw, judged by a rule fixed before the screen (labels read for the diagnosis only).

    python benchmarks/mm_upt_screen.py --runs "3 numbers, shuffled=runs/s8/screen_c3s_t07.json" ... \
        --out benchmarks/results/learning_mm_upt_s8_screen

Reads `benchmarks/mm_upt_diagnosis.py` outputs (`--validation N` runs) and writes OUT.md (one row per checkpoint:
validation greedy, maj@k, maj@k − greedy with its paired SE, the vote on contested prompts, the rule's verdict, and the
same numbers on the SFT's own rows beside them), OUT.json (the reports without the per-prompt records) and OUT.png
(the margin against SFT steps, validation and SFT rows, per variant).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# The session-8 rule (notes/s8_learn.md), on the validation prompts: greedy no better than the ceiling, the vote
# right on more than half of the prompts whose samples disagree, and maj@k − greedy at least 2 paired SE.
MAX_GREEDY = 0.8
MIN_CONTESTED_VOTE = 0.5
MIN_MARGIN_SE = 2.0


def verdict(summary: dict) -> list[str]:
    """The conditions of the rule that `summary` (one split of mm_upt_diagnosis.summarise) fails; empty = qualifies."""
    failed = []
    if summary["greedy_accuracy"] > MAX_GREEDY:
        failed.append(f"greedy > {MAX_GREEDY}")
    contested = summary["contested_vote_accuracy"]
    if contested is None or contested <= MIN_CONTESTED_VOTE:
        failed.append(f"vote right on ≤ {MIN_CONTESTED_VOTE} of contested")
    margin, se = summary["vote_margin"], summary["vote_margin_se"]
    if not (se > 0 and margin >= MIN_MARGIN_SE * se):
        failed.append(f"margin < {MIN_MARGIN_SE:g} SE")
    return failed


def steps_of(name: str) -> int | None:
    """The SFT step in a checkpoint's name ("sft450", "c3s450" -> 450)."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else None


def _z(summary: dict) -> str:
    return f"{summary['vote_margin'] / summary['vote_margin_se']:+.2f}" if summary["vote_margin_se"] > 0 else "-"


def screen_rows(label: str, report: dict, split: str = "validation") -> list[str]:
    """One markdown row per checkpoint of one diagnosis report."""
    rows = []
    for name, model in report["models"].items():
        s, t = model[split], model.get("train")
        failed = verdict(s)
        sft = (f"{t['greedy_accuracy']:.3f} / {t['majority_accuracy']:.3f} / {t['vote_margin']:+.3f} ({t['vote_margin_se']:.3f}) "
               f"({t['prompts']})") if t else "-"
        contested = "-" if s["contested_vote_accuracy"] is None else f"{s['contested_vote_accuracy']:.2f}"
        rows.append(f"| {label} | {report['temperature']:g} | {steps_of(name)} | {s['greedy_accuracy']:.3f} | "
                    f"{s['majority_accuracy']:.3f} | {s['vote_margin']:+.3f} ({s['vote_margin_se']:.3f}) | {_z(s)} | "
                    f"{contested} | {'**yes**' if not failed else 'no: ' + '; '.join(failed)} | {sft} |")
    return rows


HEADER = ("| variant | T | SFT steps | greedy | maj@k | maj@k − greedy (SE) | in SE | vote right on contested | qualifies | "
          "SFT rows: greedy / maj@k / margin (SE) (prompts) |\n" + "|---" * 10 + "|")


def plot(runs: list[tuple[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for axis, split, title in ((axes[0], "validation", "validation prompts (never seen)"), (axes[1], "train", "the SFT's own rows")):
        series: dict[str, list] = {}  # one line per variant and temperature, whichever runs its checkpoints came from
        for label, report in runs:
            series.setdefault(f"{label}, T {report['temperature']:g}", []).extend(
                (steps_of(n), m[split]["vote_margin"], m[split]["vote_margin_se"]) for n, m in report["models"].items() if split in m)
        for name, points in series.items():
            if points:
                x, y, e = zip(*sorted(points))
                axis.errorbar(x, y, yerr=[2 * v for v in e], marker="o", capsize=2, label=name)
        axis.axhline(0, color="grey", lw=0.8)
        axis.set_title(f"maj@k − greedy ± 2 SE, {title}")
        axis.set_xlabel("SFT steps")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="LABEL=DIAGNOSIS.json")
    parser.add_argument("--out", type=Path, required=True, help="stem: writes .md, .json and .png")
    args = parser.parse_args(argv)
    runs = []  # (label, report); a variant's checkpoints may come from several diagnosis runs
    for item in args.runs:
        label, path = item.split("=", 1)
        runs.append((label, json.loads(Path(path).read_text())["report"]))
    lines = [HEADER]
    for label, report in runs:
        lines += screen_rows(label, report)
    qualified = [(f"{label}, T {r['temperature']:g}", n) for label, r in runs for n, m in r["models"].items()
                 if not verdict(m["validation"])]
    text = ("Rule (on the validation prompts): greedy ≤ {:g}, the vote right on > {:g} of the contested prompts, maj@k − greedy "
            "≥ {:g} paired SE.\n\n".format(MAX_GREEDY, MIN_CONTESTED_VOTE, MIN_MARGIN_SE) + "\n".join(lines)
            + f"\n\nQualifying: {', '.join(f'{k}: {n}' for k, n in qualified) or 'none'}.\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps([{"label": label, "report": r} for label, r in runs], indent=1))
    plot(runs, args.out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
