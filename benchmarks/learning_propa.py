"""PROPA learning check on the synthetic digits task: held-out step-wise greedy accuracy before/after PROPA and, as
the comparison the paper makes, outcome-reward GRPO in the same step format, from the same cached warm start, 3 seeds
as parallel processes; then, per PROPA seed, a PRM trained on that run's trees and the PROPA policy answering the
held-out questions greedily, by step-level best-of-4 and by PRM-guided MCTS.

    python benchmarks/learning_propa.py                       # 3 seeds, the budget below
    python benchmarks/learning_propa.py --seeds 0 --rounds 2   # a quick look
    python benchmarks/learning_propa.py --prm-sweep 0 192       # + does more PRM data fix the PRM (first seed)
    python benchmarks/learning_propa.py --rounds 48 --methods propa --stages training --name learning_propa_s8_rounds48

Both training methods run `recipes/propa.yaml` through `mmpost train` (its held-out accuracy is the task's
`evaluate_policy`: greedy step-by-step decoding scored by PROPA's check); only the experience source differs:
"propa" (MCTS, step-level groups from the tree, interleaved SFT) vs "step_outcome_grpo" (4 chains per question, every
step labelled with its chain's final correctness). Diagnostics: sampled accuracy and pass@4 (4 chains per held-out
question at temperature 1) before/after; per round the search's solved fraction, groups and SFT questions; for the
PRM, its ranking of the policy's own candidate steps on held-out questions (AUC, and how often its top pick is right
against a random pick) -- the number that says whether PRM-guided search can beat greedy decoding.
Writes benchmarks/results/learning_propa.{md,json} and learning_propa.png (`--name` picks another stem; `--methods`
and `--stages` run a part: e.g. the 48-round runs alone, scored elsewhere, benchmarks/propa_fresh_heldout.py).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from learning_report import add_run_arguments, ensure_zoo_model, Job, Row, mean_std, run_jobs, write_report  # noqa: E402

WARM = REPO / "artifacts" / "tiny-qwen2.5-vl-propa"
STEP_TOKENS = 28
PRM_QUESTIONS = 0
# Candidate-step temperatures at inference: the official 1.0, and 0.5, which keeps candidates nearer the greedy step
# (measured: at 1.0 only 10 of 128 candidate sets mixed right and wrong steps, and best-of-4 fell to 0.094 from
# greedy 0.156 on a PROPA policy, the PRM's AUC being 0.61).
SEARCH_TEMPERATURES = [1.0, 0.5]
METHODS = ("propa", "outcome_grpo")
STAGES = ("training", "sampled", "inference")  # training always runs (or is read back); the other two can be left out


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


def search_more_trees(model_dir: Path, task, samples, iterations: int, max_steps: int, batch: int = 32,
                      cache: Path | None = None) -> list:
    """PRM data beyond the run's own trees: PROPA's training search (MCTS with greedy-rollout values, k = 4) run by
    the final policy on further training questions, `batch` trees in lockstep at a time. With `cache` (a JSON-lines
    file of `save_trees`), trees already searched for these questions are read back and new ones appended."""
    from mmpost.search.mcts import MCTSConfig, SearchTree, rollout_evaluator, run_mcts
    from mmpost.search.source import load_trees, save_trees

    stored = dict(load_trees(cache)) if cache is not None and cache.is_file() else {}
    out = [(s, stored[s["id"]]) for s in samples if s["id"] in stored]
    todo = [s for s in samples if s["id"] not in stored]
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        proposer, _ = _proposer(model_dir, task, chunk)
        trees = [SearchTree(answer=str(s["answer"])) for s in chunk]
        run_mcts(trees, proposer, rollout_evaluator(proposer, max_steps), MCTSConfig(iterations=iterations, num_children=4))
        if cache is not None:  # extended per batch: an interrupted search keeps what it finished
            previous = [(stored_id, tree) for stored_id, tree in stored.items()]
            stored.update({s["id"]: tree for s, tree in zip(chunk, trees)})
            save_trees(cache, [t for _, t in previous] + trees, [{"id": i} for i, _ in previous] + chunk)
        out += list(zip(chunk, trees))
    order = {s["id"]: i for i, s in enumerate(samples)}
    return sorted(out, key=lambda pair: order[pair[0]["id"]])


def inference_comparison(model_dir: str, tree_dir: str, heldout: int, prm_epochs: int, prm_iterations: int,
                         max_steps: int, seed: int, prm_questions: int = 0, search_iterations: int = 8,
                         temperatures: Sequence[float] = (1.0,)) -> dict:
    """PRM trained on the run's trees (a value head on the PROPA policy; plus, with `prm_questions`, trees the final
    policy searched on that many further training questions), then greedy / best-of-4 / PRM-MCTS on the held-out
    questions, and the PRM's ranking of the policy's own candidate steps; the sampled strategies and the ranking once per
    candidate temperature in `temperatures` (official 1.0; the first one's results are also the top-level keys)."""
    import torch

    from mmpost.eval.search_strategy import SearchSettings, accuracy_of, answer_questions
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder, build_prm, prm_examples, prm_ranking_metrics, prm_step_judgements, train_prm
    from mmpost.search.source import load_trees

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    started = time.perf_counter()
    wall: dict[str, float] = {}
    task = _task(heldout)
    train_samples = task.load("train")
    train_rows = {s["id"]: s for s in train_samples}
    trees = [(train_rows[i], tree) for path in sorted(Path(tree_dir).glob("*.jsonl")) for i, tree in load_trees(path)]
    if prm_questions:
        searched = {s["id"] for s, _ in trees}
        fresh = [s for s in train_samples if s["id"] not in searched][:prm_questions]
        trees += search_more_trees(Path(model_dir), task, fresh, search_iterations, max_steps,
                                   cache=Path(tree_dir).parent / "prm_more_trees.jsonl")
    wall["prm_data"] = time.perf_counter() - started
    _, processor = _proposer(Path(model_dir), task, [])
    examples = [e for q, (_, tree) in enumerate(trees) for e in prm_examples(tree, q)]
    prm = build_prm(model_dir, seed=seed)
    mark = time.perf_counter()
    losses = train_prm(prm, PathEncoder(processor, task, ImageModality(), [s for s, _ in trees]), examples,
                       epochs=prm_epochs, lr=1e-3, batch_size=16, seed=seed)
    wall["prm_training"] = time.perf_counter() - mark
    samples = task.load("heldout")
    encoder = PathEncoder(processor, task, ImageModality(), samples)
    settings = SearchSettings(num_children=4, min_iterations=prm_iterations, min_final_answers=2,
                              max_iterations=4 * prm_iterations, max_steps=max_steps)
    labels = [e.label for e in examples]
    out = {"prm_examples": len(examples), "prm_trees": len(trees), "prm_loss_first": losses[0], "prm_loss_last": losses[-1],
           "prm_label_mean": statistics.mean(labels), "prm_label_nonzero": sum(v > 0 for v in labels) / len(labels),
           "prm_label_variance": statistics.pvariance(labels), "by_temperature": {}}
    mark = time.perf_counter()
    proposer, _ = _proposer(Path(model_dir), task, samples)
    out["greedy"] = accuracy_of(answer_questions("greedy", proposer, len(samples), settings), samples)
    wall["greedy"] = time.perf_counter() - mark
    for temperature in temperatures:
        proposer, _ = _proposer(Path(model_dir), task, samples, temperature=temperature)
        result = {}
        for key, strategy in (("best_of_4", "best_of_n"), ("prm_mcts", "prm_mcts")):
            mark = time.perf_counter()
            answers = answer_questions(strategy, proposer, len(samples), settings, prm=prm, encoder=encoder)
            result[key] = accuracy_of(answers, samples)
            wall[f"{key}_t{temperature}"] = time.perf_counter() - mark
        mark = time.perf_counter()
        judgements = prm_step_judgements(proposer, prm, encoder, len(samples), k=4, depths=(0, 1), max_steps=max_steps)
        result["prm_ranking"] = prm_ranking_metrics(judgements)
        wall[f"prm_ranking_t{temperature}"] = time.perf_counter() - mark
        out["by_temperature"][str(temperature)] = result
        if temperature == temperatures[0]:
            out.update(result)
    out["seconds"] = time.perf_counter() - started
    out["wall_seconds"] = wall
    return out


def prm_sweep(model_dir: str, tree_dir: str, heldout: int, prm_epochs: int, max_steps: int, seed: int,
              sizes: Sequence[int], search_iterations: int, temperature: float = 1.0) -> list[dict]:
    """Does more PRM data fix the PRM? For each N in `sizes`: a fresh PRM (value head on this PROPA policy, `seed`)
    trained on the run's trees plus trees the policy searched on N further training questions (searched once, the
    largest N, and cached beside the run), then judged on the policy's own candidate steps on the held-out questions
    (the same candidates for every N: sampling is reseeded). Per N: label balance, fit (loss vs label variance),
    AUC, top pick right against a random pick."""
    import torch

    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder, build_prm, prm_examples, prm_ranking_metrics, prm_step_judgements, train_prm
    from mmpost.search.source import load_trees

    torch.set_num_threads(1)
    task = _task(heldout)
    train_samples = task.load("train")
    train_rows = {s["id"]: s for s in train_samples}
    own = [(train_rows[i], tree) for path in sorted(Path(tree_dir).glob("*.jsonl")) for i, tree in load_trees(path)]
    searched = {s["id"] for s, _ in own}
    fresh = [s for s in train_samples if s["id"] not in searched][: max(sizes)]
    mark = time.process_time()
    more = search_more_trees(Path(model_dir), task, fresh, search_iterations, max_steps,
                             cache=Path(tree_dir).parent / "prm_more_trees.jsonl") if max(sizes) else []
    search_cpu = time.process_time() - mark
    _, processor = _proposer(Path(model_dir), task, [])
    samples = task.load("heldout")
    encoder = PathEncoder(processor, task, ImageModality(), samples)
    out = []
    for size in sizes:
        trees = own + more[:size]
        examples = [e for q, (_, tree) in enumerate(trees) for e in prm_examples(tree, q)]
        labels = [e.label for e in examples]
        prm = build_prm(model_dir, seed=seed)
        mark = time.process_time()
        losses = train_prm(prm, PathEncoder(processor, task, ImageModality(), [s for s, _ in trees]), examples,
                           epochs=prm_epochs, lr=1e-3, batch_size=16, seed=seed)
        train_cpu = time.process_time() - mark
        torch.manual_seed(seed)
        proposer, _ = _proposer(Path(model_dir), task, samples, temperature=temperature)
        ranking = prm_ranking_metrics(prm_step_judgements(proposer, prm, encoder, len(samples), k=4, depths=(0, 1),
                                                          max_steps=max_steps))
        out.append({"further_questions": size, "trees": len(trees), "examples": len(examples),
                    "label_nonzero": sum(v > 0 for v in labels) / len(labels), "label_mean": statistics.mean(labels),
                    "label_variance": statistics.pvariance(labels), "loss_first": losses[0], "loss_last": losses[-1],
                    "ranking": ranking, "train_cpu_seconds": train_cpu, "search_cpu_seconds": search_cpu})
        print(json.dumps(out[-1]), flush=True)
    return out


def _cached(path: Path, key: dict, compute):
    """The inference stage's results, kept beside the runs (keyed by its settings and the runs' fingerprints), so a
    failure in the report does not cost the stage again. Returns the value and the seconds it took when computed."""
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["value"], stored["seconds"]
    started = time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - started
    path.write_text(json.dumps({"key": key, "value": value, "seconds": seconds}, default=float))
    return value, seconds


def _cached_stages(folder: Path, stages: dict, parallel: int) -> dict:
    """`_cached` for several stages ({name: (function, jobs, key)}) whose missing jobs share one process pool, so a
    stage with fewer jobs than `parallel` does not leave a slot idle. Returns {name: (values, seconds)}."""
    out, pending = {}, {}
    for name, (function, jobs, key) in stages.items():
        path = folder / f"{name}.json"
        stored = json.loads(path.read_text()) if path.is_file() else {}
        if stored.get("key") == key:
            out[name] = stored["value"], stored["seconds"]
        else:
            pending[name] = (function, jobs, key, path)
    if pending:
        started = time.perf_counter()
        width = max(1, min(parallel, sum(len(jobs) for _, jobs, _, _ in pending.values())))
        with ProcessPoolExecutor(max_workers=width, mp_context=get_context("spawn")) as pool:
            futures = {name: [pool.submit(function, **job) for job in jobs] for name, (function, jobs, _, _) in pending.items()}
            for name, (_, _, key, path) in pending.items():
                value = [f.result() for f in futures[name]]
                seconds = time.perf_counter() - started
                path.write_text(json.dumps({"key": key, "value": value, "seconds": seconds}, default=float))
                out[name] = value, seconds
    return out


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _pool_map(function, jobs: list[dict], parallel: int) -> list:
    with ProcessPoolExecutor(max_workers=max(1, min(parallel, len(jobs))), mp_context=get_context("spawn")) as pool:
        return [f.result() for f in [pool.submit(function, **job) for job in jobs]]


def ensure_warm_start() -> None:
    import mmpost.tasks.propa  # noqa: F401  (registers the zoo entry)

    ensure_zoo_model(WARM, "tiny-qwen2.5-vl-propa")


def inference_lines(args, inference: list[dict], sweep: list[dict]) -> list[str]:
    """The report's tables of the inference stage (and of the PRM data sweep, when run)."""
    prm_data = "the run's trees" + (f" plus trees the final policy searched on {args.prm_questions} further training "
                                     "questions" if args.prm_questions else "")
    lines = ["Inference on each seed's PROPA policy (held-out questions; PRM = a value head on that policy trained "
             f"{args.prm_epochs} epochs on {prm_data}; candidate steps sampled at temperature T; best-of-4 per step; "
             f"PRM-MCTS with >= {args.prm_iterations} iterations and 2 final answers):", "",
             "| strategy | accuracy (mean ± std) | per seed | − greedy (mean ± std) | per seed |", "|---|---|---|---|---|"]

    def strategy_line(name: str, values: list[float]) -> str:
        mean, std = mean_std(values)
        gain = [v - r["greedy"] for v, r in zip(values, inference)]
        gain_mean, gain_std = mean_std(gain)
        return (f"| {name} | {mean:.3f} ± {std:.3f} | " + " / ".join(f"{v:.3f}" for v in values)
                + f" | {gain_mean:+.3f} ± {gain_std:.3f} | " + " / ".join(f"{v:+.3f}" for v in gain) + " |")

    lines.append(strategy_line("greedy", [r["greedy"] for r in inference]))
    for temperature in args.search_temperatures:
        for key in ("best_of_4", "prm_mcts"):
            lines.append(strategy_line(f"{key}, T = {temperature}", [r["by_temperature"][str(temperature)][key] for r in inference]))
    lines += ["", "The PRM on its own training data (loss ≈ label variance means it predicts little more than the mean), "
              "and on the policy's own candidate steps (4 samples at temperature T at depths 0 and 1 of each held-out "
              "question's greedy chain, each labelled by a greedy rollout from it):", "",
              "| seed | T | PRM trees / examples (labels > 0) | PRM loss first → last epoch (label variance) | AUC | right candidates | "
              "top pick right | random pick right | candidate sets that mix right and wrong |",
              "|---|---|---|---|---|---|---|---|---|"]
    for seed, r in zip(args.seeds, inference):
        for temperature in args.search_temperatures:
            m = r["by_temperature"][str(temperature)]["prm_ranking"]
            lines.append(f"| {seed} | {temperature} | {r['prm_trees']} / {r['prm_examples']} ({r['prm_label_nonzero']:.2f}) | "
                         f"{r['prm_loss_first']:.4f} → {r['prm_loss_last']:.4f} ({r['prm_label_variance']:.4f}) | {m['auc']:.3f} | "
                         f"{m['right_fraction']:.3f} | {m['pick_right']:.3f} | {m['random_pick_right']:.3f} | "
                         f"{int(m['mixed_sets'])} of {int(m['candidates'] // 4)} |")
    if sweep:
        lines += ["", f"Does more data fix the PRM? Seed {args.seeds[0]}'s PROPA policy; each PRM a fresh value head trained "
                  f"{args.prm_epochs} epochs on the run's trees plus trees that policy searched on N further training questions "
                  "(PROPA's search: MCTS, greedy-rollout values, k = 4); judged on the same candidate steps at T = 1.0:", "",
                  "| N further questions | trees / examples | labels > 0 | loss first → last (label variance) | share of variance explained | "
                  "AUC | right candidates | top pick right | random pick right | mixed sets | PRM training CPU s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sweep:
            m = r["ranking"]
            lines.append(f"| {r['further_questions']} | {r['trees']} / {r['examples']} | {r['label_nonzero']:.2f} | "
                         f"{r['loss_first']:.4f} → {r['loss_last']:.4f} ({r['label_variance']:.4f}) | "
                         f"{1 - r['loss_last'] / r['label_variance']:.2f} | {m['auc']:.3f} | {m['right_fraction']:.3f} | "
                         f"{m['pick_right']:.3f} | {m['random_pick_right']:.3f} | {int(m['mixed_sets'])} | {r['train_cpu_seconds']:.0f} |")
        lines.append(f"(searching the {max(args.prm_sweep)} further questions: {sweep[-1]['search_cpu_seconds']:.0f} CPU s)")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--methods` and `--stages` run a part of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "learning_propa")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8, help="questions per round")
    parser.add_argument("--iterations", type=int, default=8, help="PROPA MCTS iterations per question (official 25)")
    parser.add_argument("--max-steps", type=int, default=6, help="step cap at evaluation and in search")
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--prm-epochs", type=int, default=3)
    parser.add_argument("--prm-iterations", type=int, default=8, help="PRM-guided MCTS minimum iterations (official 25)")
    parser.add_argument("--prm-questions", type=int, default=PRM_QUESTIONS,
                        help="further training questions the final policy searches for PRM data (0 = the run's trees only)")
    parser.add_argument("--prm-sweep", type=int, nargs="*", default=[],
                        help="further training questions per PRM in a data sweep on the first seed's PROPA policy (e.g. 0 192)")
    parser.add_argument("--search-temperatures", type=float, nargs="+", default=SEARCH_TEMPERATURES,
                        help="sampling temperatures of the candidate steps at inference (official 1.0, first)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="after training: sampled accuracy / pass@4, and the PRM inference comparison (needs propa)")
    parser.add_argument("--name", default="learning_propa", help="stem of the report in --results")
    args = parser.parse_args(argv)
    if ("inference" in args.stages or args.prm_sweep) and "propa" not in args.methods:
        parser.error("the inference stage and the PRM sweep need the propa method")
    if args.prm_sweep and "inference" not in args.stages:
        parser.error("the PRM sweep runs in the inference stage")
    return args


def training_jobs(args: argparse.Namespace) -> list[Job]:
    """The training runs: each of `args.methods` × each seed, `args.rounds` rounds from the warm start, the same
    recipe and overrides for both methods but the experience source (and PROPA's trees kept for the PRM)."""
    common = [f"model.path={WARM}", "model.zoo=null", f"data.prompts_per_step={args.prompts}",
              f"data.task_args.heldout_size={args.heldout}", f"data.task_args.max_steps={args.max_steps}",
              "algorithm.kl_coef=0.0", "train.save_every=0", *args.overrides]
    sources = {
        "propa": ["algorithm.source=propa", f"algorithm.source_args={{iterations: {args.iterations}, num_children: 4, "
                  f"max_depth: {args.max_steps}, system_prompt: ''}}"],
        "outcome_grpo": ["algorithm.source=step_outcome_grpo",
                         f"algorithm.source_args={{num_chains: 4, max_depth: {args.max_steps}, system_prompt: ''}}"],
    }
    jobs = []
    for name in args.methods:
        for seed in args.seeds:
            output = args.out / name / f"seed{seed}"
            trees = [f"algorithm.source_args.tree_dir={output / 'trees'}"] if name == "propa" else []
            jobs.append(Job(key=(name, seed), recipe="propa", overrides=common + sources[name] + trees, output_dir=output,
                            seed=seed, steps=args.rounds))
    return jobs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    ensure_warm_start()
    wall = {"warm_start": time.perf_counter() - started}
    jobs = training_jobs(args)
    runs = run_jobs(jobs, parallel=args.parallel)
    wall["training"] = time.perf_counter() - started - sum(wall.values())
    # Runs read back from an earlier invocation cost ~0 s here; their own wall times (1 process each) say what they took.
    run_seconds = {f"{name}/{seed}": run.seconds for (name, seed), run in runs.items()}
    # Sampled accuracy and pass@4 before (once) and after (each run), as the report's columns.
    k = 4
    folders = {key: str(args.out / key[0] / f"seed{key[1]}" / "checkpoints" / f"step_{args.rounds}" / "model") for key in runs}
    fingerprints = [json.loads((job.output_dir / "job.json").read_text())["fingerprint"] for job in jobs]
    if "sampled" in args.stages:
        sampled, wall["sampled_chains"] = _cached(args.out / "sampled.json", {"runs": fingerprints, "heldout": args.heldout, "k": k}, lambda: _pool_map(
            sampled_chains, [{"model_dir": str(WARM), "heldout": args.heldout, "k": k, "max_steps": args.max_steps}]
            + [{"model_dir": folders[key], "heldout": args.heldout, "k": k, "max_steps": args.max_steps} for key in runs], args.parallel))
        for key, after in zip(runs, sampled[1:]):
            runs[key].summary.update({f"heldout_{n}_before": v for n, v in sampled[0].items()})
            runs[key].summary.update({f"heldout_{n}_after": v for n, v in after.items()})
            runs[key].summary["heldout_pass_k_before"] = k
    inference, sweep, lines = [], [], []
    if "inference" in args.stages:
        inference_jobs = [
            {"model_dir": folders[("propa", s)], "tree_dir": str(args.out / "propa" / f"seed{s}" / "trees"),
             "heldout": args.heldout, "prm_epochs": args.prm_epochs, "prm_iterations": args.prm_iterations,
             "max_steps": args.max_steps, "seed": s, "prm_questions": args.prm_questions,
             "search_iterations": args.iterations, "temperatures": args.search_temperatures} for s in args.seeds]
        stages = {"inference": (inference_comparison, inference_jobs,
                                {"runs": fingerprints, "seeds": args.seeds, "prm_epochs": args.prm_epochs,
                                 "prm_iterations": args.prm_iterations, "prm_questions": args.prm_questions,
                                 "temperatures": args.search_temperatures, "heldout": args.heldout})}
        if args.prm_sweep:
            first = args.seeds[0]
            stages["prm_sweep"] = (prm_sweep, [{"model_dir": folders[("propa", first)], "tree_dir": str(args.out / "propa" / f"seed{first}" / "trees"),
                                                "heldout": args.heldout, "prm_epochs": args.prm_epochs, "max_steps": args.max_steps,
                                                "seed": first, "sizes": args.prm_sweep, "search_iterations": args.iterations}],
                                   {"runs": fingerprints, "seed": first, "sizes": args.prm_sweep, "prm_epochs": args.prm_epochs,
                                    "heldout": args.heldout})
        staged = _cached_stages(args.out, stages, args.parallel)
        inference, wall["inference"] = staged["inference"]
        sweep = staged["prm_sweep"][0][0] if args.prm_sweep else []
        lines = inference_lines(args, inference, sweep)
    labels = {"propa": ("PROPA", "propa"), "outcome_grpo": ("outcome-reward GRPO (step format)", "propa_outcome_grpo")}
    rows = [Row(labels[name][0], labels[name][1], [runs[(name, s)] for s in args.seeds],
                metric="held-out accuracy (greedy, step-wise)", task="propa_digits", warm_start="tiny-qwen2.5-vl-propa",
                steps=args.rounds) for name in args.methods]
    search = {}
    if "propa" in args.methods:
        for key in ("propa/solved_fraction", "propa/groups", "propa/sft_questions"):  # not among the report's curves
            search[key] = [statistics.mean(record[key] for record in _metrics(args.out / "propa" / f"seed{s}") if key in record)
                           for s in args.seeds]
        lines += ["", "PROPA's rounds (mean per round over seeds): solved fraction of the searched questions "
                  f"{statistics.mean(search['propa/solved_fraction']):.3f}, step-level groups {statistics.mean(search['propa/groups']):.1f}, "
                  f"questions sent to SFT {statistics.mean(search['propa/sft_questions']):.1f}."]
    lines += ["", f"{args.rounds} rounds × {args.prompts} questions, {args.iterations} MCTS iterations, k = 4, step cap "
              f"{args.max_steps}; {args.heldout} held-out questions; seeds {args.seeds}, 1 thread per process, "
              f"{args.parallel} at a time; wall time " + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items())
              + f"; this invocation {time.perf_counter() - started:.0f} s, stages computed earlier read back from {args.out} (a shared 2-core machine); each training run's own wall time "
              + ", ".join(f"{k} {v:.0f} s" for k, v in run_seconds.items()) + f" ({args.parallel} at a time)."]
    wall["total"] = time.perf_counter() - started
    body = write_report(rows, args.name, default_name="learning_propa", title=f"**PROPA** (`recipes/propa.yaml`, {args.rounds} rounds)",
                        results=args.results, text="\n".join(lines),
                        extra={"inference": inference, "prm_sweep": sweep, "search": search, "wall_seconds": wall,
                               "training_run_seconds": run_seconds})
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
