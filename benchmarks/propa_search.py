"""Can PRM-guided search beat greedy decoding on the PROPA policy? Two changes measured against the official
inference (`mmpost.search.prm`), on each seed's PROPA policy of `benchmarks/learning_propa.py` (600-step warm start,
lr 3e-4, 8 rounds; runs/learning_propa_ws600_lr3e-4/propa/seedN):

- the final-path rule (`PATH_RULES`: "mean" is the official `find_best_path`, the others are ours), all applied to
  the same PRM-guided trees;
- the PRM: the official regression on W/N (MSE) vs a Bradley-Terry PRM trained on sibling contrasts
  (`sibling_pairs`, `pairwise_loss`; ours), both a fresh value head on the policy trained on the run's own trees.

Stage "select" measures everything on TRAINING-split questions the run never searched (different ids and contents
from the run's 64 trees and from the 448 further questions of the PRM sweep), so the choice is made without the
held-out set: greedy, PRM-MCTS under every (PRM, candidate temperature, rule), and each PRM's ranking of the policy's
own candidate steps (top pick right vs random pick right per mixed candidate set, with the SE of the lift).
Stage "heldout" then runs the chosen (PRM, temperature, rule) on the 64 held-out questions, 3 seeds, beside greedy
and the official rule on the same trees.

    python benchmarks/propa_search.py select --name learning_propa_s7_search_select
    python benchmarks/propa_search.py heldout --prm pairwise --temperature 0.5 --rule vote --name learning_propa_s7_search

Session 8 (48-round runs, the setting fixed beforehand, the regression PRM only; select measures the ranking only, heldout
answers the first 128 unscored held-out questions, benchmarks/propa_fresh_heldout.py's `unscored_heldout`):

    python benchmarks/propa_search.py select --runs runs/learning_propa_s8_rounds48/propa --prms regression \
        --temperatures 0.5 --ranking-only --out runs/propa_s8_search --name learning_propa_s8_search_select
    python benchmarks/propa_search.py heldout --runs runs/learning_propa_s8_rounds48/propa --prms regression \
        --unscored 320 --heldout 128 --out runs/propa_s8_search --name learning_propa_s8_search

The pre-registered test of the majority vote (same policies, PRMs and search; the next 512 unscored questions, from
index 1201 on, disjoint from the first set by construction):

    python benchmarks/propa_search.py heldout --runs runs/learning_propa_s8_rounds48/propa --prms regression \
        --unscored 1201 --heldout 512 --rule vote --out runs/propa_s8_search --name learning_propa_s8_search_vote_test
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

RUNS = REPO / "runs" / "learning_propa_ws600_lr3e-4" / "propa"
OUT = REPO / "runs" / "propa_s7_search"
PRMS = ("regression", "pairwise")
STEP_CAP = 6
PRM_EPOCHS = 3


def question_content(sample) -> tuple:
    """A digits question itself (its image is drawn from the digits): held-out or training indices can repeat one."""
    return sample["kind"], tuple(sample["digits"]), sample["threshold"]


def selection_questions(seed_dirs: Sequence[Path], count: int) -> list[dict]:
    """Training-split questions no run searched: ids and contents outside every seed's trees and the PRM sweep's
    further trees; the last `count` of the first 2048 training indices."""
    from learning_propa import _task
    from mmpost.search.source import load_trees

    train = _task(64).load("train", size=2048)
    by_id = {s["id"]: s for s in train}
    used = set()
    for folder in seed_dirs:
        files = sorted((folder / "trees").glob("*.jsonl")) + [p for p in [folder / "prm_more_trees.jsonl"] if p.is_file()]
        used |= {i for path in files for i, _ in load_trees(path)}
    used_contents = {question_content(by_id[i]) for i in used if i in by_id}
    fresh = [s for s in train if s["id"] not in used and question_content(s) not in used_contents]
    if len(fresh) < count:
        raise ValueError(f"only {len(fresh)} unsearched training questions, need {count}")
    return fresh[-count:]


def _policy(model_dir: Path, samples, temperature: float):
    from learning_propa import _proposer, _task

    return _proposer(model_dir, _task(64), samples, temperature=temperature)


def run_trees(model_dir: Path, tree_dir: Path):
    """A run's searched trees [(sample, tree)] and the PRM's `PathEncoder` over their samples (question i = tree i)."""
    from learning_propa import _task
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder
    from mmpost.search.source import load_trees

    task = _task(64)
    rows = {s["id"]: s for s in task.load("train")}
    trees = [(rows[i], tree) for path in sorted(tree_dir.glob("*.jsonl")) for i, tree in load_trees(path)]
    _, processor = _policy(model_dir, [], 1.0)
    return trees, PathEncoder(processor, task, ImageModality(), [s for s, _ in trees])


def train_prms(model_dir: Path, tree_dir: Path, out: Path, seed: int, prms: Sequence[str] = PRMS) -> dict:
    """The PRMs (both by default) on the run's own trees (3 epochs, lr 1e-3: the settings of learning_propa.py's PRM), saved to `out`."""
    import torch

    from mmpost.search.prm import build_prm, prm_examples, sibling_pairs, train_pairwise_prm, train_prm

    trees, encoder = run_trees(model_dir, tree_dir)
    info = {}
    for objective in prms:
        folder = out / f"prm_{objective}"
        if (folder / "value_head.json").is_file() and (out / f"prm_{objective}.json").is_file():
            info[objective] = json.loads((out / f"prm_{objective}.json").read_text())
            continue
        prm = build_prm(model_dir, seed=seed, objective=objective)
        mark = time.process_time()
        if objective == "regression":
            data = [e for q, (_, tree) in enumerate(trees) for e in prm_examples(tree, q)]
            losses = train_prm(prm, encoder, data, epochs=PRM_EPOCHS, lr=1e-3, batch_size=16, seed=seed)
        else:
            data = [p for q, (_, tree) in enumerate(trees) for p in sibling_pairs(tree, q)]
            losses = train_pairwise_prm(prm, encoder, data, epochs=PRM_EPOCHS, lr=1e-3, batch_size=8, seed=seed)
        info[objective] = {"examples": len(data), "losses": losses, "train_cpu_seconds": time.process_time() - mark}
        prm.save(folder)
        (out / f"prm_{objective}.json").write_text(json.dumps(info[objective]))
        del prm
    torch.manual_seed(seed)
    return info


def search_accuracies(model_dir: Path, prm_dir: Path, samples, temperature: float, seed: int, iterations: int,
                      rules: Sequence[str]) -> dict:
    """PRM-guided MCTS on `samples` (>= `iterations` iterations and 2 final answers, cap 4x), every rule on the same
    trees: {rule: accuracy, "per_question": {rule: [0/1]}, terminals per tree, chosen chain length}."""
    import torch

    from learning_propa import _task
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder, load_prm, prm_guided_trees

    torch.manual_seed(seed)
    proposer, processor = _policy(model_dir, samples, temperature)
    prm = load_prm(prm_dir)
    encoder = PathEncoder(processor, _task(64), ImageModality(), samples)
    mark = time.process_time()
    trees = prm_guided_trees(proposer, prm, encoder, len(samples), num_children=4, min_iterations=iterations,
                             min_final_answers=2, max_iterations=4 * iterations)
    return {"cpu_seconds": time.process_time() - mark, **tree_accuracies(trees, samples, rules)}


def tree_accuracies(trees, samples, rules: Sequence[str]) -> dict:
    """Every final-path rule on the same searched trees: {rule: accuracy, "per_question": {rule: [0/1]}, "steps":
    {rule: chosen chain length}, terminals per tree, distinct final steps per tree, and the share of trees where some
    terminal node is right (what a perfect final-path rule would reach)}."""
    from mmpost.search.mcts import is_correct_step
    from mmpost.search.prm import StepJudgement, prm_ranking_metrics, tree_answer

    out = {"per_question": {}, "steps": {},
           "terminals_per_tree": statistics.mean(sum(n.terminal for n in t.nodes) for t in trees),
           "distinct_terminal_steps_per_tree": statistics.mean(len({n.step for n in t.nodes if n.terminal}) for t in trees),
           "any_terminal_right": statistics.mean(float(any(n.terminal and is_correct_step(n.step, str(s["answer"]))
                                                         for n in t.nodes)) for t, s in zip(trees, samples))}
    # the search's scores as a verifier of final answers: its terminal nodes' scores against their correctness,
    # pooled (AUC) and per tree whose terminals mix right and wrong (top-scored terminal right vs a random one)
    out["terminal_ranking"] = prm_ranking_metrics([StepJudgement(t, 0, n.score, is_correct_step(n.step, str(s["answer"])))
                                                   for t, (tree, s) in enumerate(zip(trees, samples))
                                                   for n in tree.nodes if n.terminal])
    for rule in rules:
        answers = [tree_answer(tree, rule) for tree in trees]
        right = [float(is_correct_step(a.text, str(s["answer"]))) for a, s in zip(answers, samples)]
        out["per_question"][rule] = right
        out[rule] = statistics.mean(right)
        out["steps"][rule] = statistics.mean(len(a.steps) for a in answers)
    return out


def greedy_accuracy(model_dir: Path, samples) -> dict:
    from mmpost.search.mcts import is_correct_step
    from mmpost.search.prm import greedy_answer

    proposer, _ = _policy(model_dir, samples, 1.0)
    answers = greedy_answer(proposer, len(samples), max_steps=STEP_CAP)
    right = [float(is_correct_step(a.text, str(s["answer"]))) for a, s in zip(answers, samples)]
    return {"accuracy": statistics.mean(right), "per_question": right, "steps": statistics.mean(len(a.steps) for a in answers)}


def ranking(model_dir: Path, out: Path, samples, temperature: float, seed: int, prms: Sequence[str] = PRMS) -> dict:
    """The PRMs on the same candidate steps (4 per depth 0 and 1 of each question's greedy chain at `temperature`)."""
    import torch

    from learning_propa import _task
    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder, candidate_steps, judge_candidates, load_prm, prm_ranking_metrics

    torch.manual_seed(seed)
    proposer, processor = _policy(model_dir, samples, temperature)
    candidates = candidate_steps(proposer, [str(s["answer"]) for s in samples], k=4, depths=(0, 1), max_steps=STEP_CAP)
    encoder = PathEncoder(processor, _task(64), ImageModality(), samples)
    return {objective: prm_ranking_metrics(judge_candidates(load_prm(out / f"prm_{objective}"), encoder, candidates))
            for objective in prms}


def select_seed(seed: int, questions: int, temperatures: Sequence[float], iterations: int, out: Path, runs: Path = RUNS,
                prms: Sequence[str] = PRMS, ranking_only: bool = False) -> dict:
    import torch

    from mmpost.search.prm import PATH_RULES
    from propa_churn import final_model

    torch.set_num_threads(1)
    run = runs / f"seed{seed}"
    model_dir = final_model(run)
    folder = out / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / "select.json"
    result = json.loads(cache.read_text()) if cache.is_file() else {}
    result["prms"] = train_prms(model_dir, run / "trees", folder, seed, prms)
    samples = selection_questions([runs / f"seed{s}" for s in (0, 1, 2)], questions)
    result["questions"] = [s["id"] for s in samples]
    if "greedy" not in result:
        result["greedy"] = greedy_accuracy(model_dir, samples)
    for temperature in temperatures:
        key = f"T{temperature}"
        if f"ranking/{key}" not in result:
            result[f"ranking/{key}"] = ranking(model_dir, folder, samples, temperature, seed, prms)
            cache.write_text(json.dumps(result))
        for objective in [] if ranking_only else prms:
            name = f"mcts/{objective}/{key}"
            if name not in result:
                result[name] = search_accuracies(model_dir, folder / f"prm_{objective}", samples, temperature, seed,
                                                 iterations, PATH_RULES)
                cache.write_text(json.dumps(result))
                print(seed, name, {r: result[name][r] for r in PATH_RULES}, "greedy", result["greedy"]["accuracy"], flush=True)
    cache.write_text(json.dumps(result))
    return result


def heldout_seed(seed: int, prm: str, temperature: float, rule: str, iterations: int, out: Path, heldout: int,
                 runs: Path = RUNS, prms: Sequence[str] = PRMS, unscored: int | None = None) -> dict:
    """Greedy and the PRM search (every rule on the same trees) on the first `heldout` held-out questions, or with
    `unscored` the first `heldout` unscored ones from that index on (propa_fresh_heldout.unscored_heldout)."""
    import torch

    from learning_propa import _task
    from propa_churn import final_model
    from propa_fresh_heldout import unscored_heldout

    torch.set_num_threads(1)
    run = runs / f"seed{seed}"
    model_dir = final_model(run)
    folder = out / f"seed{seed}"
    samples = _task(heldout).load("heldout") if unscored is None else unscored_heldout(_task(64), unscored, heldout)
    result = {"greedy": greedy_accuracy(model_dir, samples)}
    from mmpost.search.prm import PATH_RULES

    rules = list(PATH_RULES)  # every rule on the same trees: the chosen one is fixed beforehand, the rest shown
    result["search"] = search_accuracies(model_dir, folder / f"prm_{prm}", samples, temperature, seed, iterations, rules)
    result["ranking"] = ranking(model_dir, folder, samples, temperature, seed, prms)
    result["questions"] = [s["id"] for s in samples]
    (folder / f"heldout_{prm}_T{temperature}_{rule}.json").write_text(json.dumps(result))
    return result


def _pool(function, jobs, parallel):
    with ProcessPoolExecutor(max_workers=max(1, min(parallel, len(jobs))), mp_context=get_context("spawn")) as pool:
        return [f.result() for f in [pool.submit(function, **job) for job in jobs]]


def _ms(values) -> str:
    from learning_report import mean_std

    mean, std = mean_std(values)
    return f"{mean:+.3f} ± {std:.3f}"


def _se(values) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")


def select_report(results: list[dict], seeds, temperatures, iterations, questions, started, runs: Path = RUNS,
                  prms: Sequence[str] = PRMS, ranking_only: bool = False) -> tuple[str, dict]:
    from mmpost.search.prm import PATH_RULES

    lines = [f"# PROPA search, measured on training questions ({questions} training-split questions no run searched; "
             f"seeds' PROPA policies of {runs.relative_to(REPO) if runs.is_relative_to(REPO) else runs})"]
    if not ranking_only:
        lines += ["", f"PRM-guided MCTS (>= {iterations} iterations and 2 final answers, cap {4 * iterations}; k = 4), every "
                  "final-path rule on the same trees. Greedy on the same questions per seed: "
                  + " / ".join(f"{r['greedy']['accuracy']:.3f}" for r in results) + ". Rule \"mean\" is the official one.", "",
                  "| PRM | T | rule | accuracy − greedy (mean ± std over seeds) | per seed | SE | steps of the chosen chain |",
                  "|---|---|---|---|---|---|---|"]
    table = {}
    for objective in [] if ranking_only else prms:
        for temperature in temperatures:
            for rule in PATH_RULES:
                name = f"mcts/{objective}/T{temperature}"
                gains = [r[name][rule] - r["greedy"]["accuracy"] for r in results]
                table[(objective, temperature, rule)] = statistics.mean(gains)
                lines.append(f"| {objective} | {temperature} | {rule} | {_ms(gains)} | " + " / ".join(f"{g:+.3f}" for g in gains)
                             + f" | {_se(gains):.3f} | {statistics.mean(r[name]['steps'][rule] for r in results):.2f} |")
    terminals = [f"{o} T {t}: {statistics.mean(r[f'mcts/{o}/T{t}']['terminals_per_tree'] for r in results):.1f}"
                 for o in prms for t in temperatures if f"mcts/{o}/T{t}" in results[0]]
    lines += ["", "Greedy on these questions per seed: " + " / ".join(f"{r['greedy']['accuracy']:.3f}" for r in results)
              + "; greedy's chain length: " + " / ".join(f"{r['greedy']['steps']:.2f}" for r in results)
              + ("; terminal nodes per tree: " + ", ".join(terminals) if terminals else "") + ".", "",
              "Each PRM on the policy's own candidate steps (4 at depths 0 and 1 of each question's greedy chain, labelled "
              "by a greedy rollout); lift = top pick right − random pick right over the candidate sets that mix right "
              "and wrong, with its SE over those sets:", "",
              "| seed | T | PRM | training examples (pairs) | loss first → last | AUC | mixed sets | top pick right | random pick right | lift ± SE |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for seed, r in zip(seeds, results):
        for temperature in temperatures:
            for objective in prms:
                m = r[f"ranking/T{temperature}"][objective]
                p = r["prms"][objective]
                lines.append(f"| {seed} | {temperature} | {objective} | {p['examples']} | {p['losses'][0]:.4f} → {p['losses'][-1]:.4f} | "
                             f"{m['auc']:.3f} | {int(m['mixed_sets'])} | {m['pick_right']:.3f} | {m['random_pick_right']:.3f} | "
                             f"{m['pick_lift']:+.3f} ± {m['pick_lift_se']:.3f} |")
    for temperature in temperatures:
        for objective in prms:
            lifts = [r[f"ranking/T{temperature}"][objective]["pick_lift"] for r in results]
            ses = [r[f"ranking/T{temperature}"][objective]["pick_lift_se"] for r in results]
            se = sum(v * v for v in ses) ** 0.5 / len(ses)  # the SE of the mean of independent seeds' lifts
            lines.append(f"| all | {temperature} | {objective} | | | | | | | {statistics.mean(lifts):+.3f} ± {se:.3f} (mean of seeds) |")
    best = max(table, key=table.get) if table else None
    if best:
        lines += ["", f"{len(table)} settings ({len(prms)} PRMs × {len(temperatures)} temperatures × {len(PATH_RULES)} rules) "
                  f"on training questions; the best by mean gain: PRM {best[0]}, T {best[1]}, rule {best[2]} ({table[best]:+.3f})."]
    lines += ["", f"CPU s per PRM training: " + ", ".join(f"{o} {statistics.mean(r['prms'][o]['train_cpu_seconds'] for r in results):.0f}" for o in prms)
              + f"; this invocation {time.perf_counter() - started:.0f} s wall (2 processes, shared 2-core machine)."]
    return "\n".join(lines), {"best": list(best or []), "table": {"/".join(map(str, k)): v for k, v in table.items()}}


def strategy_rows(prm: str, temperature: float, rule: str, greedy: list, chosen: list, official: list) -> list[tuple[str, list]]:
    """The held-out report's rows: greedy, the chosen setting and, unless the chosen rule is the official "mean"
    (then it would print the same row twice), the official rule on the same trees."""
    rows = [("greedy", greedy), (f"PRM-MCTS, {prm} PRM, T {temperature}, rule {rule}", chosen)]
    if rule != "mean":
        rows.append(("same trees, official rule mean", official))
    return rows


def main(argv=None) -> int:
    from learning_report import write_results

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["select", "heldout"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--questions", type=int, default=64, help="training-split questions for the selection")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--iterations", type=int, default=8, help="PRM-MCTS minimum iterations (as learning_propa.py)")
    parser.add_argument("--prm", choices=PRMS, default="regression")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--rule", default="mean")
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--name", default=None)
    parser.add_argument("--runs", type=Path, default=RUNS, help="the PROPA runs' folder (seedN/ with trees/ and checkpoints/)")
    parser.add_argument("--prms", nargs="+", choices=PRMS, default=list(PRMS), help="the PRMs trained and compared")
    parser.add_argument("--ranking-only", action="store_true", help="select: the PRMs' ranking only, no search on training questions")
    parser.add_argument("--unscored", type=int, default=None, metavar="START",
                        help="heldout: the first --heldout unscored held-out questions from index START on")
    parser.add_argument("--choice", default="chosen on training questions, learning_propa_s7_search_select.md",
                        help="heldout: how the setting was chosen (for the report)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.stage == "select":
        results = _pool(select_seed, [{"seed": s, "questions": args.questions, "temperatures": args.temperatures,
                                       "iterations": args.iterations, "out": args.out, "runs": args.runs, "prms": args.prms,
                                       "ranking_only": args.ranking_only} for s in args.seeds], args.parallel)
        text, summary = select_report(results, args.seeds, args.temperatures, args.iterations, args.questions, started,
                                      args.runs, args.prms, args.ranking_only)
        write_results(args.name or "learning_propa_s7_search_select", text,
                      {"seeds": args.seeds, "summary": summary, "results": results})
        print(text)
        return 0
    results = _pool(heldout_seed, [{"seed": s, "prm": args.prm, "temperature": args.temperature, "rule": args.rule,
                                    "iterations": args.iterations, "out": args.out, "heldout": args.heldout,
                                    "runs": args.runs, "prms": args.prms, "unscored": args.unscored}
                                   for s in args.seeds], args.parallel)
    greedy = [r["greedy"]["accuracy"] for r in results]
    chosen = [r["search"][args.rule] for r in results]
    official = [r["search"]["mean"] for r in results]
    questions = f"the first {args.heldout} unscored from index {args.unscored}" if args.unscored is not None else args.heldout
    lines = [f"# PROPA search on the held-out questions ({questions}; the setting: PRM {args.prm}, T "
             f"{args.temperature}, rule {args.rule}, {args.choice})", "",
             "| strategy | accuracy (mean ± std) | per seed | − greedy (mean ± std) | per seed | SE of − greedy |", "|---|---|---|---|---|---|"]
    for label, values in strategy_rows(args.prm, args.temperature, args.rule, greedy, chosen, official):
        gains = [v - g for v, g in zip(values, greedy)]
        lines.append(f"| {label} | {_ms(values)[1:]} | "
                     + " / ".join(f"{v:.3f}" for v in values) + f" | {_ms(gains)} | " + " / ".join(f"{g:+.3f}" for g in gains)
                     + f" | {_se(gains):.3f} |")
    wins = [sum(c > g for c, g in zip(r["search"]["per_question"][args.rule], r["greedy"]["per_question"])) for r in results]
    losses = [sum(c < g for c, g in zip(r["search"]["per_question"][args.rule], r["greedy"]["per_question"])) for r in results]
    others = [r for r in results[0]["search"]["per_question"] if r not in (args.rule, "mean")]
    lines += ["", "The other rules on the same held-out trees (not chosen; shown, not selected on): " + "; ".join(
        f"{o} {_ms([r['search'][o] - g for r, g in zip(results, greedy)])}" for o in others) + " (− greedy)."]
    lines += ["", "Questions the search wins / loses against greedy per seed: " + ", ".join(f"{w}/{l}" for w, l in zip(wins, losses))
              + "; chosen chain length " + " / ".join(f"{r['search']['steps'][args.rule]:.2f}" for r in results)
              + " vs greedy " + " / ".join(f"{r['greedy']['steps']:.2f}" for r in results) + ".", "",
              "The PRMs' ranking of the policy's own candidate steps on the held-out questions (T "
              f"{args.temperature}): lift = top pick right − random pick right over mixed sets, ± SE:", "",
              "| seed | PRM | AUC | mixed sets | top pick right | random pick right | lift ± SE |", "|---|---|---|---|---|---|---|"]
    for seed, r in zip(args.seeds, results):
        for objective in args.prms:
            m = r["ranking"][objective]
            lines.append(f"| {seed} | {objective} | {m['auc']:.3f} | {int(m['mixed_sets'])} | {m['pick_right']:.3f} | "
                         f"{m['random_pick_right']:.3f} | {m['pick_lift']:+.3f} ± {m['pick_lift_se']:.3f} |")
    lines.append(f"\nThis invocation {time.perf_counter() - started:.0f} s wall (2 processes, shared 2-core machine); MCTS CPU s per seed "
                 + " / ".join(f"{r['search']['cpu_seconds']:.0f}" for r in results) + ".")
    text = "\n".join(lines)
    write_results(args.name or "learning_propa_s7_search", text,
                  {"seeds": args.seeds, "setting": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   "results": results})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
