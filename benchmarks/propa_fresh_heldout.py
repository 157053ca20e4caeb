"""PROPA policies on held-out questions no comparison was made on: greedy step-by-step accuracy of the warm start and
of each run's final policy on sets of held-out questions; per run the gain over the warm start, and for each group of
runs (the folders' parent, e.g. runs/propa_s7_rounds24/pool) mean ± std, per-seed gains and the SE of the mean gain.

Sets: `--ranges A:B ...` are held-out indices [A, B) (the benchmark's 64 are 0:64, on which session 7 compared its
variants; 64:320 its "further 256"). `--unscored START COUNT` is the set no one has scored: the first COUNT held-out
questions from index START on whose question occurs neither below START nor earlier in the set (`unscored_heldout`).
Held-out indices repeat questions (a question is its kind, digits and threshold; the image is drawn from the digits):
174 of indices 320-831 repeat one of 0-319, mostly the few 2-digit ones. Greedy decoding answers a question the same
way wherever it stands, so each policy answers each distinct question once; answers are kept in --cache.

    python benchmarks/propa_fresh_heldout.py runs/propa_s7_rounds24/pool/seed{0,1,2} --ranges 64:320
    python benchmarks/propa_fresh_heldout.py runs/learning_propa_s8_rounds48/propa/seed{0,1,2} \\
        --ranges 0:64 64:320 320:832 --unscored 320 512 --name learning_propa_s8_unscored
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from propa_churn import final_model  # noqa: E402
from propa_search import question_content  # noqa: E402


def unscored_heldout(task, start: int, count: int) -> list:
    """The first `count` held-out questions from index `start` on whose question is neither among indices [0, start)
    nor earlier in the list: questions no one scored by index below `start`, each once."""
    size = start + count
    while True:
        samples = task.load("heldout", size=size)
        seen = {question_content(s) for s in samples[:start]}
        out = []
        for sample in samples[start:]:
            key = question_content(sample)
            if key not in seen:
                seen.add(key)
                out.append(sample)
                if len(out) == count:
                    return out
        size *= 2


def _key(sample) -> str:
    return json.dumps(question_content(sample))


def cached_greedy(model_dir: str, samples: list, cache: str) -> dict[str, float]:
    """{question: 1/0} greedy step-by-step answers of the policy in `model_dir`, computing only the questions the JSON
    file `cache` does not hold yet (it keeps the CPU seconds spent beside them)."""
    import torch

    from propa_churn import greedy_right

    torch.set_num_threads(1)
    path = Path(cache)
    stored = json.loads(path.read_text()) if path.is_file() else {"model": model_dir, "right": {}, "cpu_seconds": 0.0}
    todo = [s for s in samples if _key(s) not in stored["right"]]
    if todo:
        mark = time.process_time()
        stored["right"].update({_key(s): r for s, r in zip(todo, greedy_right(Path(model_dir), todo))})
        stored["cpu_seconds"] += time.process_time() - mark
        stored.setdefault("questions_timed", 0)
        stored["questions_timed"] += len(todo)
        path.write_text(json.dumps(stored))
    return stored


def paired_question_gain(before: list[float], afters: list[list[float]]) -> tuple[float, float]:
    """The mean gain and its SE over questions: per question the seeds' mean answer minus the warm start's (paired).
    The SE over seeds says how much another seed would move the gain on these questions; this one says how much
    another draw of questions would (each run turns many answers right and many wrong)."""
    per_question = [statistics.mean(answers) - b for b, answers in zip(before, zip(*afters), strict=True)]
    return statistics.mean(per_question), statistics.stdev(per_question) / len(per_question) ** 0.5


def set_table(name: str, samples: list, warm: dict, groups: dict[str, list[tuple[str, dict]]]) -> tuple[list[str], dict]:
    """Rows of one question set: per group of runs its accuracies, gains over the warm start, their SE over seeds and
    over questions, and per seed the answers turned right / wrong."""
    from learning_report import gain_statistics
    from propa_churn import turned

    def answers(right: dict) -> list[float]:
        return [right[_key(s)] for s in samples]

    def accuracy(right: dict) -> float:
        return statistics.mean(answers(right))

    before = accuracy(warm)
    lines, out = [], {"questions": len(samples), "distinct": len({_key(s) for s in samples}), "warm": before, "groups": {}}
    for group, runs in groups.items():
        after = [accuracy(right) for _, right in runs]
        stats = gain_statistics([before] * len(after), after)
        _, question_se = paired_question_gain(answers(warm), [answers(right) for _, right in runs])
        changed = [turned(answers(warm), answers(right)) for _, right in runs]
        lines.append(f"| {name} | {group} | {before:.3f} | " + " / ".join(f"{a:.3f}" for a in after)
                     + f" | {stats['gain_mean']:+.3f} ± {stats['gain_std']:.3f} | " + " / ".join(f"{g:+.3f}" for g in stats["gains"])
                     + f" | {stats['gain_se']:.3f} | {stats['gain_over_se']:+.1f} | {question_se:.3f} | "
                     f"{stats['gain_mean'] / question_se:+.1f} | " + ", ".join(f"{r} / {w}" for r, w in changed) + " |")
        out["groups"][group] = {"seeds": [n for n, _ in runs], "after": after, **stats, "question_se": question_se,
                                "turned_right_wrong": changed}
    return lines, out


def digits_table(samples: list, warm: dict, groups: dict[str, list[tuple[str, dict]]]) -> list[str]:
    """Accuracy by the number of digits in the image (the unscored set is richer in 4-digit questions)."""
    lines = []
    for digits in sorted({len(s["digits"]) for s in samples}):
        part = [s for s in samples if len(s["digits"]) == digits]
        cells = [f"{statistics.mean(warm[_key(s)] for s in part):.3f}"]
        for runs in groups.values():
            cells.append(" / ".join(f"{statistics.mean(right[_key(s)] for s in part):.3f}" for _, right in runs))
        lines.append(f"| {digits} | {len(part)} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    from learning_propa import WARM, _task
    from learning_report import write_results

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--ranges", nargs="*", default=["64:320"], help="held-out index ranges A:B")
    parser.add_argument("--unscored", type=int, nargs=2, metavar=("START", "COUNT"), default=None)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "propa_greedy_heldout")
    parser.add_argument("--name", default="learning_propa_s7_fresh_heldout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    task = _task(64)
    sets = {}
    for spec in args.ranges:
        low, high = (int(v) for v in spec.split(":"))
        sets[f"held-out {low}-{high - 1}"] = task.load("heldout", size=high)[low:]
    if args.unscored:
        start, count = args.unscored
        unscored = unscored_heldout(task, start, count)
        sets[f"unscored {count} (held-out index ≥ {start}, no question seen below it or twice)"] = unscored
    distinct = list({_key(s): s for samples in sets.values() for s in samples}.values())
    models = {"warm": str(WARM), **{str(run): str(final_model(run)) for run in args.runs}}
    args.cache.mkdir(parents=True, exist_ok=True)
    caches = {name: str(args.cache / (model.replace("/", "_").strip("_") + ".json")) for name, model in models.items()}
    with ProcessPoolExecutor(max_workers=max(1, min(args.parallel, len(models))), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(cached_greedy, model, distinct, caches[name]) for name, model in models.items()}
        answers = {name: future.result() for name, future in futures.items()}
    warm = answers["warm"]["right"]
    groups: dict[str, list[tuple[str, dict]]] = {}
    for run in args.runs:
        groups.setdefault(str(run.parent), []).append((run.name, answers[str(run)]["right"]))
    lines = ["# PROPA's final policies on held-out question sets (greedy step-by-step, step cap 6)", "",
             "| questions | runs | warm start | after (per seed) | gain (mean ± std) | per-seed gain | SE (seeds) | gain / SE | "
             "SE (questions) | gain / SE (questions) | answers turned right / wrong, per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    out = {"sets": {}, "models": models}
    for name, samples in sets.items():
        rows, out["sets"][name] = set_table(name, samples, warm, groups)
        lines += rows
    lines += ["", "SE (seeds) = std of the per-seed gains / sqrt(seeds), the project's test; SE (questions) = std over "
              "questions of (the seeds' mean answer − the warm start's) / sqrt(questions): how far another draw of "
              "questions would move the gain.", "", "Distinct questions per set: " + "; ".join(f"{n}: {o['distinct']} of {o['questions']}" for n, o in out["sets"].items())
              + ". By digits in the image (" + ", ".join(f"{n}: " + " / ".join(f"{d} digits {c}" for d, c in sorted(Counter(
                  len(s["digits"]) for s in samples).items())) for n, samples in sets.items()) + ")."]
    if args.unscored:
        lines += ["", "The unscored set by digits in the image (accuracy; runs per seed):", "",
                  "| digits | questions | warm start | " + " | ".join(groups) + " |", "|---|---|---|" + "---|" * len(groups)]
        lines += digits_table(unscored, warm, groups)
        out["unscored_ids"] = [s["id"] for s in unscored]
    cpu = {name: a["cpu_seconds"] / max(1, a.get("questions_timed", 0)) for name, a in answers.items()}
    out["cpu_seconds_per_question"] = cpu
    lines += ["", f"{len(distinct)} distinct questions answered per policy; CPU s per question answered (greedy, 1 thread): "
              + ", ".join(f"{v:.3f}" for v in cpu.values()) + f"; this invocation {time.perf_counter() - started:.0f} s wall "
              f"({args.parallel} processes, a shared 2-core machine; answers computed earlier read back from {args.cache})."]
    text = "\n".join(lines)
    write_results(args.name, text, out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
