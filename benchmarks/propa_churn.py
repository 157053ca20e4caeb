"""Where do PROPA's updates move the greedy answers? For the warm start and each finished run, greedy step-by-step
answers on (a) the training questions the run searched (its trees' ids) and (b) the held-out questions; per run the
accuracy before -> after on each, and how many questions turned right / wrong. A policy that fits what it trained on
gains on (a); one that only churns turns about as many right as wrong on both.

    python benchmarks/propa_churn.py runs/learning_propa_ws600_lr3e-4/propa/seed0 ... --name learning_propa_s7_churn
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def greedy_right(model_dir: Path, samples) -> list[float]:
    from learning_propa import _proposer, _task
    from mmpost.search.mcts import is_correct_step
    from mmpost.search.prm import greedy_answer

    proposer, _ = _proposer(model_dir, _task(64), samples)
    answers = greedy_answer(proposer, len(samples), max_steps=6)
    return [float(is_correct_step(a.text, str(s["answer"]))) for a, s in zip(answers, samples)]


def final_model(run: Path) -> Path:
    """The model folder of a run's last checkpoint."""
    return max((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1])) / "model"


def turned(before: list[float], after: list[float]) -> tuple[int, int]:
    """(questions wrong -> right, right -> wrong)."""
    return sum(a > b for a, b in zip(after, before)), sum(a < b for a, b in zip(after, before))


def main(argv=None) -> int:
    import torch

    from learning_propa import WARM, _task
    from learning_report import write_results
    from mmpost.search.source import load_trees

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with trees/ and checkpoints/step_N/model")
    parser.add_argument("--name", default="learning_propa_s7_churn")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    task = _task(64)
    train = {s["id"]: s for s in task.load("train")}
    heldout = task.load("heldout")
    warm_heldout = greedy_right(WARM, heldout)
    rows, records = [], []
    for run in args.runs:
        ids = sorted({i for path in sorted((run / "trees").glob("*.jsonl")) for i, _ in load_trees(path)})
        searched = [train[i] for i in ids]
        final = final_model(run)
        before_train, after_train = greedy_right(WARM, searched), greedy_right(final, searched)
        after_heldout = greedy_right(final, heldout)
        record = {"run": str(run.relative_to(REPO)) if run.is_absolute() else str(run), "searched": len(ids),
                  "train_before": statistics.mean(before_train), "train_after": statistics.mean(after_train),
                  "train_turned": turned(before_train, after_train), "heldout_before": statistics.mean(warm_heldout),
                  "heldout_after": statistics.mean(after_heldout), "heldout_turned": turned(warm_heldout, after_heldout)}
        records.append(record)
        rows.append(f"| {record['run']} | {len(ids)} | {record['train_before']:.3f} → {record['train_after']:.3f} | "
                    f"{record['train_turned'][0]} / {record['train_turned'][1]} | {record['heldout_before']:.3f} → "
                    f"{record['heldout_after']:.3f} | {record['heldout_turned'][0]} / {record['heldout_turned'][1]} |")
        print(rows[-1], flush=True)
    text = "\n".join(["# Where PROPA's updates move the greedy answers (warm start → each run's final policy)", "",
                      "| run | searched training questions | greedy on them, before → after | turned right / wrong | "
                      "held-out (64) before → after | turned right / wrong |", "|---|---|---|---|---|---|", *rows])
    write_results(args.name, text, records)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
