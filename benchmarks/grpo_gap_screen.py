"""The GRPO warm-start screen on digit_sum: which SFT checkpoint has a pass@k − greedy gap that is skill, not guessing,
judged by a rule fixed before the screen (session 9; labels read for the diagnosis only).

    python benchmarks/grpo_gap_screen.py --runs "3 numbers, digits 1-5=runs/s9/step1_c3sh5.json" ... \
        --greedy-from "3 numbers, digits 1-5=runs/s8/screen_c3sh5_t07.json" ... --out benchmarks/results/learning_grpo_s9_screen

Reads `benchmarks/mm_upt_diagnosis.py` outputs (`--validation N`, k samples at the training temperature) and writes
OUT.md (one row per checkpoint: validation greedy, pass@k, the gap with its paired SE, a uniform guess's pass@k, the gap
above guessing, the neighbouring checkpoints' greedy and the rule's verdict) and OUT.json. `--greedy-from` adds other
diagnosis runs of the same SFT curve (any temperature: greedy does not depend on it) as neighbours only; `--settings`
adds the GRPO checkpoints scored on the validation prompts to choose lr and steps (a table of every setting tried).

Why these conditions: GRPO turns pass@k − pass@1 into greedy accuracy only where the k samples hold knowledge the
policy can be sharpened onto. On the shapes task most of that gap was a coin's or a uniform guess's (README, "Shapes"),
so a gap here must stand above what guessing among the possible sums reaches in k tries, and the checkpoint must not be
a transient dip of its SFT run, which any small update might undo.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import chance_pass_at_k  # noqa: E402
from learning_report import write_results  # noqa: E402
from mm_upt_diagnosis import paired_mean_se  # noqa: E402
from mm_upt_screen import steps_of  # noqa: E402

# The session-9 rule (notes/s9_learn.md), on the validation prompts.
MAX_GREEDY = 0.8          # the "non-trivial"
MIN_GAP = 0.10            # pass@k − greedy, absolute ...
MIN_GAP_SE = 2.0          # ... and in paired standard errors
MIN_ABOVE_GUESS = 0.20    # the model's pass@k at least this far above a uniform guess's
MAX_NEIGHBOUR_JUMP = 0.05  # the checkpoints NEIGHBOUR_STEPS before and after within this of its greedy
NEIGHBOUR_STEPS = 50


def possible_sums(count: int, low: int, high: int) -> int:
    """How many sums `count` digits in [low, high] can have: count·low .. count·high."""
    return count * (high - low) + 1


def gap_and_se(records: list[dict]) -> tuple[float, float]:
    """pass@k − greedy over prompts and its paired SE (d_i = any of the k answers right − greedy right)."""
    return paired_mean_se([(r["truth"] in r["answers"]) - (r["greedy"] == r["truth"]) for r in records])


def transient_dip(greedy: float, neighbours: list[float | None]) -> list[str]:
    """Why a checkpoint is not a settled point of its SFT curve: a neighbour unmeasured or more than
    MAX_NEIGHBOUR_JUMP away from its greedy. Empty = settled."""
    if any(n is None for n in neighbours):
        return [f"a neighbour ±{NEIGHBOUR_STEPS} steps unmeasured"]
    if any(abs(n - greedy) > MAX_NEIGHBOUR_JUMP for n in neighbours):
        return [f"a neighbour ±{NEIGHBOUR_STEPS} steps differs by > {MAX_NEIGHBOUR_JUMP}"]
    return []


def screen(records: list[dict], *, k: int, choices: int, neighbours: list[float | None]) -> dict:
    """One checkpoint's numbers and the conditions of the rule it fails (`failed` empty = qualifies)."""
    greedy = sum(r["greedy"] == r["truth"] for r in records) / len(records)
    best = sum(r["truth"] in r["answers"] for r in records) / len(records)
    gap, se = gap_and_se(records)
    guess = chance_pass_at_k(choices, k)
    failed = []
    if greedy > MAX_GREEDY:
        failed.append(f"greedy > {MAX_GREEDY}")
    if gap < MIN_GAP or not (se > 0 and gap >= MIN_GAP_SE * se):
        failed.append(f"gap < {MIN_GAP} or < {MIN_GAP_SE:g} SE")
    if guess > best - MIN_ABOVE_GUESS:
        failed.append(f"uniform guess within {MIN_ABOVE_GUESS} of pass@{k}")
    failed += transient_dip(greedy, neighbours)
    return {"prompts": len(records), "greedy": greedy, "pass_at_k": best, "gap": gap, "gap_se": se, "choices": choices,
            "guess_pass_at_k": guess, "gap_above_guessing": best - max(greedy, guess), "neighbours": neighbours,
            "failed": failed}


def choose(rows: list[dict]) -> dict | None:
    """The qualifier with the largest gap above guessing; within 0.01 of it, the one with fewer SFT steps."""
    qualified = [r for r in rows if not r["failed"]]
    if not qualified:
        return None
    best = max(r["gap_above_guessing"] for r in qualified)
    return min((r for r in qualified if r["gap_above_guessing"] >= best - 0.01), key=lambda r: r["steps"])


def greedy_by_step(reports: list[dict]) -> dict[int, float]:
    """Validation greedy accuracy per SFT step from diagnosis reports of one curve (the later report wins)."""
    out = {}
    for report in reports:
        for name, model in report["models"].items():
            if "validation" in model and steps_of(name) is not None:
                out[steps_of(name)] = model["validation"]["greedy_accuracy"]
    return out


def markdown(rows: list[dict], chosen: dict | None) -> str:
    lines = [f"Rule (validation prompts): greedy ≤ {MAX_GREEDY}; pass@k − greedy ≥ {MIN_GAP} and ≥ {MIN_GAP_SE:g} paired SE; "
             f"a uniform guess's pass@k ≤ pass@k − {MIN_ABOVE_GUESS}; the checkpoints ±{NEIGHBOUR_STEPS} SFT steps within "
             f"±{MAX_NEIGHBOUR_JUMP} of its greedy. Choice: the largest gap above guessing, pass@k − max(greedy, guess).", "",
             "| variant | SFT steps | greedy | pass@k | gap (SE) | uniform guess pass@k (sums) | gap above guessing | "
             "greedy at −50 / +50 | qualifies |", "|---" * 9 + "|"]
    for r in rows:
        near = " / ".join("-" if n is None else f"{n:.3f}" for n in r["neighbours"])
        lines.append(f"| {r['variant']} | {r['steps']} | {r['greedy']:.3f} | {r['pass_at_k']:.3f} | {r['gap']:+.3f} "
                     f"({r['gap_se']:.3f}) | {r['guess_pass_at_k']:.3f} ({r['choices']}) | {r['gap_above_guessing']:+.3f} | "
                     f"{near} | {'**yes**' if not r['failed'] else 'no: ' + '; '.join(r['failed'])} |")
    lines += ["", f"Chosen: {chosen['variant']}, {chosen['steps']} SFT steps." if chosen else "Chosen: none qualifies."]
    return "\n".join(lines)


def paid_with_wrong_reading(records: list[dict]) -> float | None:
    """Of the sampled answers a box-only reward pays (the box is the true sum), the share whose worked answer misread the
    numbers (as a multiset: the reading order is free): credit the reward gives to wrong reading tokens."""
    paid = wrong = 0
    for r in records:
        for answer, read in zip(r["answers"], r["reads"]):
            if answer == r["truth"]:
                paid += 1
                wrong += read is None or sorted(read) != sorted(r["numbers"])
    return wrong / paid if paid else None


def settings_table(runs: list[tuple[str, dict, dict]]) -> str:
    """Every model of the `--settings` diagnosis reports (GRPO checkpoints scored on the validation prompts to choose lr
    and steps), each run's first model (the warm start) first: greedy, sampled accuracy, pass@k, and how the box relates
    to the worked answer's reading (greedy misread; greedy box ≠ the sum of its own reading; of the right sampled boxes,
    the share reached through a misread)."""
    lines = ["| grid | model | greedy | sampled | pass@k | greedy misread | greedy box ≠ own reading's sum | right samples "
             "misread |", "|---" * 8 + "|"]
    for label, report, records in runs:
        for name, model in report["models"].items():
            v = model["validation"]
            paid = paid_with_wrong_reading(records.get(name, {}).get("validation", []))
            lines.append(f"| {label} | {name} | {v['greedy_accuracy']:.3f} | {v['sampled_accuracy']:.3f} | {v['pass_at_k']:.3f} "
                         f"| {v['greedy_reading_wrong']:.3f} | {v['greedy_sum_inconsistent']:.3f} | "
                         f"{'-' if paid is None else f'{paid:.3f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], help="VARIANT=DIAGNOSIS.json: the screened checkpoints")
    parser.add_argument("--greedy-from", nargs="*", default=[], help="VARIANT=DIAGNOSIS.json: neighbours' greedy only")
    parser.add_argument("--settings", nargs="*", default=[],
                        help="LABEL=DIAGNOSIS.json: GRPO checkpoints on the validation prompts (the lr and steps choice)")
    parser.add_argument("--out", required=True, help="results name: benchmarks/results/<out>.{md,json}")
    args = parser.parse_args(argv)

    from mmpost.tasks.mm_upt.task import DigitSumTask

    loaded = [(item.split("=", 1)[0], json.loads(Path(item.split("=", 1)[1]).read_text())) for item in args.runs]
    curves: dict[str, list[dict]] = {}
    for item in args.greedy_from:
        variant, path = item.split("=", 1)
        curves.setdefault(variant, []).append(json.loads(Path(path).read_text())["report"])
    rows = []
    for variant, data in loaded:
        report = data["report"]
        curve = greedy_by_step(curves.get(variant, []) + [report])
        options = DigitSumTask(**{k: v for k, v in report["task_args"].items() if k in ("count", "low", "high")})
        choices = possible_sums(options.count, options.low, options.high)
        for name, records in data["records"].items():
            steps = steps_of(name)
            neighbours = [curve.get(steps - NEIGHBOUR_STEPS), curve.get(steps + NEIGHBOUR_STEPS)]
            rows.append({"variant": variant, "model": name, "steps": steps, "temperature": report["temperature"],
                         "k": report["k"], **screen(records["validation"], k=report["k"], choices=choices, neighbours=neighbours)})
    chosen = choose(rows)
    text = markdown(rows, chosen) if rows else ""
    settings = []
    for item in args.settings:
        label, path = item.split("=", 1)
        data = json.loads(Path(path).read_text())
        settings.append((label, data["report"], data.get("records", {})))
    if settings:
        text += ("\n\n" if text else "") + (
            "GRPO from the chosen warm start, seed 0, scored on the same validation prompts (k samples at the "
            "training temperature), every setting tried:\n\n" + settings_table(settings))
    write_results(args.out, text, {"rows": rows, "chosen": chosen,
                                   "settings": [{"label": label, "report": report} for label, report, _ in settings]})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
