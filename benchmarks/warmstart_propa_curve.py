"""Is the PROPA warm start (`tiny-qwen2.5-vl-propa`) on an SFT plateau? Results: benchmarks/results/learning_propa_warmstart.md.

    python benchmarks/warmstart_propa_curve.py sft [STEPS] [--every 100] [--rope-theta 1e6] [--name run]
    python benchmarks/warmstart_propa_curve.py eval [--name run]          # every checkpoint of that run
    python benchmarks/warmstart_propa_curve.py table [--name run]         # the curve as a markdown table

`sft` runs the zoo entry's own recipe (tasks/propa/warmup.py: `tiny-qwen2.5-vl` seed 0, step-format SFT through the
"step_sft" source, 16 questions per step, lr 1e-3, short questions, no system turn) and keeps a checkpoint every
`--every` steps; `--rope-theta` changes only the base model's M-RoPE base (the zoo entry keeps the hub's 1e6).
`eval` scores each checkpoint the way the learning benchmark scores a warm start, on two question sets:
- "dev": 64 training-split questions the SFT never saw (train indices 512.., minus any whose kind, digits and threshold
  occur among the 512 training questions). The warm start is chosen on these, not on the held-out questions;
- "heldout": the benchmark's 64 held-out questions (reported, not used to choose).
Per set: greedy step-wise accuracy, sampled accuracy and pass@4 at T 1 (4 chains per question), and how often the
greedy first step reads the digits exactly ("The digits are ...").
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "runs" / "warmstart_propa_curve"
DEV_QUESTIONS = 64


def part_sft(args) -> None:
    import torch

    import mmpost.tasks.propa  # noqa: F401
    from mmpost.config import config_from_dict
    from mmpost.registry import MODEL_ZOO
    from mmpost.tasks.propa.warmup import STEP_MAX_NEW_TOKENS, WARMUP_LR
    from mmpost.trainer import train

    torch.set_num_threads(1)
    base = OUT / args.name / "base"
    MODEL_ZOO.get("tiny-qwen2.5-vl")(base, seed=0, rope_theta=args.rope_theta)
    raw = {"model": {"path": str(base)},
           "data": {"task": "propa_digits", "task_args": {"seed": 0, "question_style": "short"}, "prompts_per_step": 16},
           "algorithm": {"source": "step_sft", "source_args": {"system_prompt": ""}, "micro_batch_size": 32},
           "rollout": {"max_new_tokens": STEP_MAX_NEW_TOKENS}, "optim": {"lr": WARMUP_LR},
           "train": {"steps": args.steps, "seed": 0, "output_dir": str(OUT / args.name / "run"), "progress": False,
                     "save_every": args.every, "keep_checkpoints": 0},
           "eval": {"heldout": False}}
    started = time.time()
    train(config_from_dict(raw))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"wall {time.time() - started:.0f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s")


def question_sets():
    from mmpost.tasks.propa import PropaDigitsTask

    task = PropaDigitsTask(question_style="short", system_prompt="", heldout_size=64)
    train = task.load("train", size=512 + 2 * DEV_QUESTIONS)
    seen = {(s["kind"], tuple(s["digits"]), s["threshold"]) for s in train[:512]}
    dev = [s for s in train[512:] if (s["kind"], tuple(s["digits"]), s["threshold"]) not in seen][:DEV_QUESTIONS]
    return task, {"dev": dev, "heldout": task.load("heldout")}


def score(model_dir: Path, task, samples, k: int, max_steps: int, seed: int = 0) -> dict[str, float]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmpost.modalities.image import ImageModality
    from mmpost.search.mcts import is_correct_step
    from mmpost.search.prm import policy_proposer
    from mmpost.search.source import sample_chains

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    proposer = policy_proposer(model, processor, task, ImageModality(), samples, max_new_tokens=28, temperature=1.0,
                               system_prompt="")

    def right(q, steps):
        return float(bool(steps) and is_correct_step(steps[-1].text, str(samples[q]["answer"])))

    greedy = sample_chains(proposer, len(samples), 1, max_steps, greedy=True)
    sampled: dict[int, list[float]] = {}
    for q, steps in sample_chains(proposer, len(samples), k, max_steps):
        sampled.setdefault(q, []).append(right(q, steps))
    return {"greedy": statistics.mean(right(q, s) for q, s in greedy),
            "reads_digits": statistics.mean(float(bool(s) and s[0].text.strip() == samples[q]["steps"][0]) for q, s in greedy),
            "sampled": statistics.mean(v for r in sampled.values() for v in r),
            f"pass@{k}": statistics.mean(max(r) for r in sampled.values())}


def part_eval(args) -> None:
    import torch

    torch.set_num_threads(1)
    task, sets = question_sets()
    if args.model:  # one model folder outside the curve (e.g. the cached zoo warm start), stored under `--label`
        models = {args.label: Path(args.model)}
    else:
        checkpoints = sorted((OUT / args.name / "run" / "checkpoints").glob("step_*"), key=lambda p: int(p.name[5:]))
        models = {c.name[5:]: c / "model" for c in checkpoints if not args.steps or int(c.name[5:]) in args.steps}
    path = OUT / args.name / "curve.json"
    for label, model in models.items():
        rows = json.loads(path.read_text()) if path.is_file() else {}
        if label in rows:
            continue
        started = time.process_time()
        row = {name: score(model, task, samples, args.k, args.max_steps) for name, samples in sets.items()}
        row["cpu_seconds"] = time.process_time() - started
        print(label, json.dumps(row), flush=True)
        rows = json.loads(path.read_text()) if path.is_file() else {}  # another eval process may have added rows
        rows[label] = row
        path.write_text(json.dumps(rows, indent=1))


def part_table(args) -> None:
    """The curve as a markdown table (printed; the results md quotes it)."""
    import statistics as stats

    rows = json.loads((OUT / args.name / "curve.json").read_text())
    metrics = [json.loads(line) for line in (OUT / args.name / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    print("| SFT steps | SFT loss (last 50 steps) | dev greedy | dev sampled (T 1) | dev pass@4 | dev pass@4 − greedy | dev reads digits "
          "| held-out greedy | held-out sampled | held-out pass@4 | held-out reads digits |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, row in sorted(rows.items(), key=lambda kv: int("".join(c for c in kv[0] if c.isdigit()))):
        steps = int("".join(c for c in label if c.isdigit()))
        window = [m["loss/sft"] for m in metrics if steps - 50 < m["step"] <= steps and "loss/sft" in m]
        loss = f"{stats.mean(window):.3f}" if window and label.isdigit() else "–"
        d, h = row["dev"], row["heldout"]
        print(f"| {label} | {loss} | {d['greedy']:.3f} | {d['sampled']:.3f} | {d['pass@4']:.3f} | {d['pass@4'] - d['greedy']:+.3f} | "
              f"{d['reads_digits']:.3f} | {h['greedy']:.3f} | {h['sampled']:.3f} | {h['pass@4']:.3f} | {h['reads_digits']:.3f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    sft = sub.add_parser("sft")
    sft.add_argument("steps", nargs="?", type=int, default=600)
    sft.add_argument("--every", type=int, default=100)
    sft.add_argument("--rope-theta", type=float, default=1_000_000.0)
    sft.add_argument("--name", default="run_theta1e6")
    evaluate = sub.add_parser("eval")
    evaluate.add_argument("--name", default="run_theta1e6")
    evaluate.add_argument("--k", type=int, default=4)
    evaluate.add_argument("--max-steps", type=int, default=6)
    evaluate.add_argument("--steps", type=int, nargs="*", help="only these checkpoints")
    evaluate.add_argument("--model", help="score this model folder instead of the run's checkpoints")
    evaluate.add_argument("--label", default="zoo", help="its row's name with --model")
    table = sub.add_parser("table")
    table.add_argument("--name", default="run_theta1e6")
    args = parser.parse_args(argv)
    {"sft": part_sft, "eval": part_eval, "table": part_table}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
