"""PROPA learning check on the synthetic digits task: held-out step-wise greedy accuracy before/after PROPA and, as
the comparison the paper makes, outcome-reward GRPO in the same step format, from the same cached warm start, 3 seeds
as parallel processes; then, per PROPA seed, a PRM trained on that run's trees and the PROPA policy answering the
held-out questions greedily, by step-level best-of-4 and by PRM-guided MCTS.

    python benchmarks/learning_propa.py                       # 3 seeds, the budget below
    python benchmarks/learning_propa.py --seeds 0 --rounds 2   # a quick look

Both training methods run `recipes/propa.yaml` through `mmpost train` (its held-out accuracy is the task's
`evaluate_policy`: greedy step-by-step decoding scored by PROPA's check); only the experience source differs:
"propa" (MCTS, step-level groups from the tree, interleaved SFT) vs "step_outcome_grpo" (4 chains per question, every
step labelled with its chain's final correctness). Diagnostics: sampled accuracy and pass@4 (4 chains per held-out
question at temperature 1) before/after; per round the search's solved fraction, groups and SFT questions; for the
PRM, its ranking of the policy's own candidate steps on held-out questions (AUC, and how often its top pick is right
against a random pick) -- the number that says whether PRM-guided search can beat greedy decoding.
Writes benchmarks/results/learning_propa.{md,json} and learning_propa.png.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from learning_report import add_run_arguments, ensure_zoo_model, Job, Row, mean_std, run_jobs, write_report  # noqa: E402

WARM = REPO / "artifacts" / "tiny-qwen2.5-vl-propa"
STEP_TOKENS = 28


def _task(heldout: int):
    from mmpost.tasks.propa import PropaDigitsTask

    return PropaDigitsTask(question_style="short", system_prompt="", heldout_size=heldout)


def _proposer(model_dir: Path, task, samples, temperature: float = 1.0):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import policy_proposer

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    return policy_proposer(model, processor, task, ImageModality(), samples, max_new_tokens=STEP_TOKENS,
                           temperature=temperature, system_prompt=""), processor


def sampled_chains(model_dir: str, heldout: int, k: int, max_steps: int, seed: int = 0) -> dict[str, float]:
    """k chains per held-out question at temperature 1: mean accuracy (pass@1 sampled) and pass@k."""
    import torch

    from mmpost.search.mcts import is_correct_step
    from mmpost.search.source import sample_chains

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    task = _task(heldout)
    samples = task.load("heldout")
    proposer, _ = _proposer(Path(model_dir), task, samples)
    right: dict[int, list[float]] = {}
    for q, steps in sample_chains(proposer, len(samples), k, max_steps):
        right.setdefault(q, []).append(float(bool(steps) and is_correct_step(steps[-1].text, str(samples[q]["answer"]))))
    return {"sampled_accuracy": statistics.mean(v for r in right.values() for v in r),
            "pass_at_k": statistics.mean(max(r) for r in right.values())}


def inference_comparison(model_dir: str, tree_dir: str, heldout: int, prm_epochs: int, prm_iterations: int,
                         max_steps: int, seed: int) -> dict:
    """PRM trained on the run's trees (a value head on the PROPA policy), then greedy / best-of-4 / PRM-MCTS on the
    held-out questions, and the PRM's ranking of the policy's own candidate steps."""
    import torch

    from mmpost.eval.search_strategy import SearchSettings, accuracy_of, answer_questions
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder, build_prm, prm_examples, prm_ranking_metrics, prm_step_judgements, train_prm
    from mmpost.search.source import load_trees

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    started = time.perf_counter()
    task = _task(heldout)
    train_rows = {s["id"]: s for s in task.load("train")}
    trees = [(train_rows[i], tree) for path in sorted(Path(tree_dir).glob("*.jsonl")) for i, tree in load_trees(path)]
    _, processor = _proposer(Path(model_dir), task, [])
    examples = [e for q, (_, tree) in enumerate(trees) for e in prm_examples(tree, q)]
    prm = build_prm(model_dir, seed=seed)
    losses = train_prm(prm, PathEncoder(processor, task, ImageModality(), [s for s, _ in trees]), examples,
                       epochs=prm_epochs, lr=1e-3, batch_size=16, seed=seed)
    samples = task.load("heldout")
    encoder = PathEncoder(processor, task, ImageModality(), samples)
    proposer, _ = _proposer(Path(model_dir), task, samples)
    settings = SearchSettings(num_children=4, min_iterations=prm_iterations, min_final_answers=2,
                              max_iterations=4 * prm_iterations, max_steps=max_steps)
    out = {"prm_examples": len(examples), "prm_trees": len(trees), "prm_loss_first": losses[0], "prm_loss_last": losses[-1]}
    for key, strategy in (("greedy", "greedy"), ("best_of_4", "best_of_n"), ("prm_mcts", "prm_mcts")):
        answers = answer_questions(strategy, proposer, len(samples), settings, prm=prm, encoder=encoder)
        out[key] = accuracy_of(answers, samples)
    judgements = prm_step_judgements(proposer, prm, encoder, len(samples), k=4, depths=(0, 1), max_steps=max_steps)
    out["prm_ranking"] = prm_ranking_metrics(judgements)
    out["seconds"] = time.perf_counter() - started
    return out


def _pool_map(function, jobs: list[dict], parallel: int) -> list:
    with ProcessPoolExecutor(max_workers=max(1, min(parallel, len(jobs))), mp_context=get_context("spawn")) as pool:
        return [f.result() for f in [pool.submit(function, **job) for job in jobs]]


def ensure_warm_start() -> None:
    import mmpost.tasks.propa  # noqa: F401  (registers the zoo entry)

    ensure_zoo_model(WARM, "tiny-qwen2.5-vl-propa")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "learning_propa")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8, help="questions per round")
    parser.add_argument("--iterations", type=int, default=8, help="PROPA MCTS iterations per question (official 25)")
    parser.add_argument("--max-steps", type=int, default=6, help="step cap at evaluation and in search")
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--prm-epochs", type=int, default=3)
    parser.add_argument("--prm-iterations", type=int, default=8, help="PRM-guided MCTS minimum iterations (official 25)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ensure_warm_start()
    common = [f"model.path={WARM}", "model.zoo=null", f"data.prompts_per_step={args.prompts}",
              f"data.task_args.heldout_size={args.heldout}", f"data.task_args.max_steps={args.max_steps}",
              "algorithm.kl_coef=0.0", "train.save_every=0", *args.overrides]
    methods = {
        "propa": ["algorithm.source=propa", f"algorithm.source_args={{iterations: {args.iterations}, num_children: 4, "
                  f"max_depth: {args.max_steps}, system_prompt: ''}}"],
        "outcome_grpo": ["algorithm.source=step_outcome_grpo",
                         f"algorithm.source_args={{num_chains: 4, max_depth: {args.max_steps}, system_prompt: ''}}"],
    }
    jobs = []
    for name, extra in methods.items():
        for seed in args.seeds:
            output = args.out / name / f"seed{seed}"
            trees = [f"algorithm.source_args.tree_dir={output / 'trees'}"] if name == "propa" else []
            jobs.append(Job(key=(name, seed), recipe="propa", overrides=common + extra + trees, output_dir=output,
                            seed=seed, steps=args.rounds))
    runs = run_jobs(jobs, parallel=args.parallel)
    # Sampled accuracy and pass@4 before (once) and after (each run), as the report's columns.
    k = 4
    folders = {key: str(args.out / key[0] / f"seed{key[1]}" / "checkpoints" / f"step_{args.rounds}" / "model") for key in runs}
    sampled = _pool_map(sampled_chains, [{"model_dir": str(WARM), "heldout": args.heldout, "k": k, "max_steps": args.max_steps}]
                        + [{"model_dir": folders[key], "heldout": args.heldout, "k": k, "max_steps": args.max_steps}
                           for key in runs], args.parallel)
    for key, after in zip(runs, sampled[1:]):
        runs[key].summary.update({f"heldout_{n}_before": v for n, v in sampled[0].items()})
        runs[key].summary.update({f"heldout_{n}_after": v for n, v in after.items()})
        runs[key].summary["heldout_pass_k_before"] = k
    inference = _pool_map(inference_comparison, [
        {"model_dir": folders[("propa", s)], "tree_dir": str(args.out / "propa" / f"seed{s}" / "trees"),
         "heldout": args.heldout, "prm_epochs": args.prm_epochs, "prm_iterations": args.prm_iterations,
         "max_steps": args.max_steps, "seed": s} for s in args.seeds], args.parallel)
    rows = [Row("PROPA", "propa", [runs[("propa", s)] for s in args.seeds], metric="held-out accuracy (greedy, step-wise)",
                task="propa_digits", warm_start="tiny-qwen2.5-vl-propa", steps=args.rounds),
            Row("outcome-reward GRPO (step format)", "propa_outcome_grpo", [runs[("outcome_grpo", s)] for s in args.seeds],
                metric="held-out accuracy (greedy, step-wise)", task="propa_digits", warm_start="tiny-qwen2.5-vl-propa",
                steps=args.rounds)]
    lines = ["Inference on each seed's PROPA policy (held-out questions; PRM = a value head on that policy trained "
             f"{args.prm_epochs} epochs on the run's trees; best-of-4 per step; PRM-MCTS with >= {args.prm_iterations} "
             "iterations and 2 final answers):", "",
             "| strategy | accuracy (mean ± std) | per seed |", "|---|---|---|"]
    for key in ("greedy", "best_of_4", "prm_mcts"):
        values = [r[key] for r in inference]
        mean, std = mean_std(values)
        lines.append(f"| {key} | {mean:.3f} ± {std:.3f} | " + " / ".join(f"{v:.3f}" for v in values) + " |")
    search_gain = [r["prm_mcts"] - r["greedy"] for r in inference]
    mean, std = mean_std(search_gain)
    lines += ["", f"PRM-MCTS − greedy: {mean:+.3f} ± {std:.3f} (per seed " + " / ".join(f"{v:+.3f}" for v in search_gain) + ")",
              "", "The PRM on the policy's own candidate steps (4 samples at temperature 1 at depths 0 and 1 of each held-out "
              "question's greedy chain, each labelled by a greedy rollout from it):", "",
              "| seed | PRM examples | AUC | top pick right | random pick right | candidate sets that mix right and wrong |",
              "|---|---|---|---|---|---|"]
    for seed, r in zip(args.seeds, inference):
        m = r["prm_ranking"]
        lines.append(f"| {seed} | {r['prm_examples']} | {m['auc']:.3f} | {m['pick_right']:.3f} | {m['random_pick_right']:.3f} | "
                     f"{int(m['mixed_sets'])} of {int(m['candidates'] // 4)} |")
    search = {}
    for key in ("propa/solved_fraction", "propa/groups", "propa/sft_questions"):
        values = [statistics.mean(v for v in runs[("propa", s)].curves.get(key, []) if v is not None) for s in args.seeds]
        search[key] = values
    lines += ["", "PROPA's rounds (mean per round over seeds): solved fraction of the searched questions "
              f"{statistics.mean(search['propa/solved_fraction']):.3f}, step-level groups {statistics.mean(search['propa/groups']):.1f}, "
              f"questions sent to SFT {statistics.mean(search['propa/sft_questions']):.1f}.",
              "", f"{args.rounds} rounds × {args.prompts} questions, {args.iterations} MCTS iterations, k = 4, step cap "
              f"{args.max_steps}; {args.heldout} held-out questions; seeds {args.seeds}, 1 thread per process, "
              f"{args.parallel} at a time; whole benchmark {time.perf_counter() - started:.0f} s (a shared 2-core machine)."]
    body = write_report(rows, "learning_propa", title=f"**PROPA** (`recipes/propa.yaml`, {args.rounds} rounds)",
                        results=args.results, text="\n".join(lines), extra={"inference": inference, "search": search})
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
