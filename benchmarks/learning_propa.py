"""PROPA on the synthetic digits task: outcome-reward GRPO vs PROPA from the same warm start, and greedy vs
step-level best-of-N vs PRM-guided search at inference. Not a test: it takes minutes.

    python benchmarks/learning_propa.py                        # 3 seeds, the budget below (~10 min on 2 cores)
    python benchmarks/learning_propa.py --seeds 0 1 2 3 --rounds 20

Both training methods run `recipes/propa.yaml` through `mmpost.train` with the same warm start (the step-SFT zoo
model), questions per round, rounds, learning rate and seeds; only the experience source differs:
"step_outcome_grpo" (G chains per question, every step rewarded with the chain's final correctness) vs "propa"
(MCTS, step-level groups from the tree, interleaved SFT). Held-out accuracy = greedy step-by-step decoding of the
held-out split, scored by the task's check. Then, per seed, a PRM (a value head on the PROPA policy) is trained on
that run's trees and the PROPA policy answers the held-out questions greedily, by step-level best-of-N, and by
PRM-guided MCTS. Writes `benchmarks/results/learning_propa.{md,json}`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_config(model: Path, output: Path, seed: int, rounds: int, source: str, source_args: dict, prompts: int) -> dict:
    raw = yaml.safe_load((REPO / "recipes" / "propa.yaml").read_text())
    raw["model"] = {"path": str(model)}
    raw["algorithm"].update(source=source, source_args=source_args, kl_coef=0.0)
    raw["data"]["prompts_per_step"] = prompts
    raw["data"]["task_args"] = {"question_style": "short", "seed": 0}
    raw["train"].update(steps=rounds, seed=seed, output_dir=str(output), threads=1, progress=False)
    return raw


def heldout_accuracy(model_dir: Path, size: int, max_steps: int) -> float:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmpost.eval.search_strategy import SearchSettings, accuracy_of, answer_questions
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import policy_proposer
    from mmpost.tasks.propa import PropaDigitsTask

    task = PropaDigitsTask(question_style="short")
    samples = task.load("heldout", size=size)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    proposer = policy_proposer(model, AutoProcessor.from_pretrained(model_dir), task, ImageModality(), samples,
                               max_new_tokens=28, system_prompt="")
    answers = answer_questions("greedy", proposer, len(samples), SearchSettings(max_steps=max_steps))
    return accuracy_of(answers, samples)


def inference_comparison(model_dir: Path, tree_dir: Path, size: int, args) -> dict[str, float]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmpost.eval.search_strategy import SearchSettings, accuracy_of, answer_questions
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder, build_prm, policy_proposer, prm_examples, train_prm
    from mmpost.search.source import load_trees
    from mmpost.tasks.propa import PropaDigitsTask

    task = PropaDigitsTask(question_style="short")
    processor = AutoProcessor.from_pretrained(model_dir)
    train_rows = {s["id"]: s for s in task.load("train")}
    trees = [(train_rows[i], tree) for path in sorted(tree_dir.glob("*.jsonl")) for i, tree in load_trees(path)]
    train_samples = [s for s, _ in trees]
    examples = [e for q, (_, tree) in enumerate(trees) for e in prm_examples(tree, q)]
    prm = build_prm(model_dir, seed=0)
    losses = train_prm(prm, PathEncoder(processor, task, ImageModality(), train_samples), examples, epochs=args.prm_epochs,
                       lr=1e-3, batch_size=16)
    samples = task.load("heldout", size=size)
    encoder = PathEncoder(processor, task, ImageModality(), samples)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    proposer = policy_proposer(model, processor, task, ImageModality(), samples, max_new_tokens=28, system_prompt="")

    # The same strategies as `mmpost eval search` (n = num_children = 4 for best-of-n), run in this order on one
    # proposer so the sampling stream matches the earlier results.
    settings = SearchSettings(num_children=4, min_iterations=args.prm_iterations, min_final_answers=2,
                              max_iterations=4 * args.prm_iterations, max_steps=args.max_steps)
    out = {"prm_examples": len(examples), "prm_loss_first": losses[0], "prm_loss_last": losses[-1]}
    for key, strategy in (("greedy", "greedy"), ("best_of_4", "best_of_n"), ("prm_mcts", "prm_mcts")):
        answers = answer_questions(strategy, proposer, len(samples), settings, prm=prm, encoder=encoder)
        out[key] = accuracy_of(answers, samples)
    return out


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8, help="questions per round")
    parser.add_argument("--warmup-steps", type=int, default=150)
    parser.add_argument("--iterations", type=int, default=8, help="PROPA MCTS iterations per question (official 25)")
    parser.add_argument("--max-steps", type=int, default=6, help="step cap at evaluation and in search")
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--prm-epochs", type=int, default=3)
    parser.add_argument("--prm-iterations", type=int, default=8, help="PRM-guided MCTS minimum iterations (official 25)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from mmpost.config import config_from_dict
    from mmpost.registry import MODEL_ZOO
    from mmpost.trainer import train

    scratch = Path(tempfile.mkdtemp(prefix="mmpost-propa-bench-"))
    started = time.perf_counter()
    warm = MODEL_ZOO.get("tiny-qwen2.5-vl-propa")(scratch / "warm", steps=args.warmup_steps)
    warm_accuracy = heldout_accuracy(warm, args.heldout, args.max_steps)
    methods = {
        "outcome_grpo": ("mmpost.search.source:StepOutcomeGRPO", {"num_chains": 4, "max_depth": args.max_steps, "system_prompt": ""}),
        "propa": ("mmpost.search.source:PropaSource", {"iterations": args.iterations, "num_children": 4, "max_depth": args.max_steps,
                                                        "system_prompt": ""}),
    }
    results: dict = {"warm_start": warm_accuracy, "args": vars(args), "runs": {}}
    for seed in args.seeds:
        for name, (source, source_args) in methods.items():
            output = scratch / f"{name}_{seed}"
            extra = {"tree_dir": str(output / "trees")} if name == "propa" else {}
            t0 = time.perf_counter()
            summary = train(config_from_dict(run_config(warm, output, seed, args.rounds, source, {**source_args, **extra}, args.prompts)))
            seconds = time.perf_counter() - t0
            model_dir = Path(summary["checkpoint"]) / "model"
            record = {"heldout_accuracy": heldout_accuracy(model_dir, args.heldout, args.max_steps), "train_seconds": seconds}
            if name == "propa":
                record["inference"] = inference_comparison(model_dir, output / "trees", args.heldout, args)
            results["runs"][f"{name}/{seed}"] = record
            print(name, seed, json.dumps(record), flush=True)
    results["seconds"] = time.perf_counter() - started

    def column(name, key):
        return [results["runs"][f"{name}/{s}"][key] for s in args.seeds]

    lines = [f"Warm start (step SFT, {args.warmup_steps} steps): held-out greedy accuracy {warm_accuracy:.3f} "
             f"({args.heldout} questions).", "",
             f"| method ({args.rounds} rounds × {args.prompts} questions, seeds {args.seeds}) | held-out accuracy | train s/run |",
             "|---|---|---|"]
    for name in methods:
        lines.append(f"| {name} | {mean_std(column(name, 'heldout_accuracy'))} | {statistics.mean(column(name, 'train_seconds')):.0f} |")
    lines += ["", "| inference on the PROPA policy | held-out accuracy |", "|---|---|"]
    for key in ("greedy", "best_of_4", "prm_mcts"):
        lines.append(f"| {key} | {mean_std([results['runs'][f'propa/{s}']['inference'][key] for s in args.seeds])} |")
    table = "\n".join(lines)
    print(table)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_propa.md").write_text(table + f"\n\nTotal {results['seconds']:.0f} s, 1 torch thread.\n")
    (out / "learning_propa.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
