"""Is "PRM-guided search >= greedy" out of reach on the PROPA policy because of the PRM or because of the search
space? An oracle bound (a diagnosis, never a method: it uses the answers).

On each seed's 48-round PROPA policy (runs/learning_propa_s8_rounds48/propa/seedN) and the same questions:
- greedy step-by-step decoding;
- PRM-guided MCTS as session 8 ran it (regression PRM runs/propa_s8_search/seedN/prm_regression, candidates at T 0.5,
  >= 8 iterations and 2 final answers, cap 32, k = 4; every final-path rule on the same trees);
- oracle-guided MCTS: the same search with the PRM's score of each evaluated step replaced by its value estimated
  from `--completions` continuations sampled from the policy at the search's temperature (T 0.5), each scored
  against the answer, ending at a final answer or at the step cap (6 steps on the path); a terminal step's value is
  its correctness (`mmpost.search.mcts.MonteCarloValues`);
- the headroom among siblings: the policy's 4 candidate steps at depths 0 and 1 of its greedy chain (as
  propa_search.py's ranking), each valued by the same number of continuations in two halves, with the PRM's scores
  of the same candidates (`mmpost.search.prm.sibling_value_metrics`).

    python benchmarks/propa_oracle.py --set train --questions 8 --seeds 0 --completions 16 --name learning_propa_s9_oracle_cost
    python benchmarks/propa_oracle.py --set heldout --questions 128 --completions 32 --name learning_propa_s9_oracle
    python benchmarks/propa_oracle.py --set train --questions 64 --completions 32 --name learning_propa_s9_oracle_train

Session 9's one PRM improvement (chosen on the training questions; `--improve` builds it per seed, then measures it):

    python benchmarks/propa_oracle.py --improve answer_contrast --set train --questions 64 --completions 32 \
        --name learning_propa_s9_answer_contrast_train
    python benchmarks/propa_oracle.py --improve answer_contrast --set heldout --questions 128 --completions 32 \
        --name learning_propa_s9_answer_contrast
    python benchmarks/propa_oracle.py --in-sample prm_regression prm_answer_contrast --name learning_propa_s9_in_sample

`--set heldout` answers the first `--questions` unscored held-out questions from index 320 (session 8's 128,
`propa_fresh_heldout.unscored_heldout`); `--set train` the last `--questions` training-split questions no run
searched (`propa_search.selection_questions`), for costs and training-side numbers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from propa_search import STEP_CAP, _ms, _policy, _pool, _se, greedy_accuracy, search_accuracies, tree_accuracies  # noqa: E402

RUNS = REPO / "runs" / "learning_propa_s8_rounds48" / "propa"
PRMS = REPO / "runs" / "propa_s8_search"  # seedN/prm_regression: session 8's regression PRMs
OUT = REPO / "runs" / "propa_s9_oracle"
TEMPERATURE = 0.5
ITERATIONS = 8
HELDOUT_START = 320


def questions(which: str, count: int, runs: Path = RUNS) -> list[dict]:
    from learning_propa import _task
    from propa_fresh_heldout import unscored_heldout
    from propa_search import selection_questions

    if which == "heldout":
        return unscored_heldout(_task(64), HELDOUT_START, count)
    return selection_questions([runs / f"seed{s}" for s in (0, 1, 2)], count)


def oracle_accuracies(model_dir: Path, samples, seed: int, completions: int, rules) -> dict:
    """Oracle-guided MCTS (the search settings of `search_accuracies`, node values from `MonteCarloValues`)."""
    import torch

    from mmpost.search.mcts import MonteCarloValues
    from mmpost.search.prm import value_guided_trees

    torch.manual_seed(seed)
    proposer, _ = _policy(model_dir, samples, TEMPERATURE)
    oracle = MonteCarloValues(proposer, [str(s["answer"]) for s in samples], completions=completions, max_depth=STEP_CAP)
    mark = time.process_time()
    trees = value_guided_trees(proposer, oracle, len(samples), num_children=4, min_iterations=ITERATIONS,
                               min_final_answers=2, max_iterations=4 * ITERATIONS)
    return {"cpu_seconds": time.process_time() - mark, "values_estimated": len(oracle.values),
            "generate_calls": proposer.calls, **tree_accuracies(trees, samples, rules)}


def sibling_headroom(model_dir: Path, prm_dir: Path, samples, seed: int, completions: int) -> dict:
    """The policy's candidate steps (4 at depths 0 and 1 of each greedy chain, T 0.5), each valued by `completions`
    sampled continuations in two halves, the PRM's scores of them, and `sibling_value_metrics` per depth and over both."""
    import torch

    from learning_propa import _task
    from mmpost.modalities.image import ImageModality
    from mmpost.search.mcts import completion_values
    from mmpost.search.prm import PathEncoder, candidate_steps, load_prm, prm_scores, sibling_value_metrics

    torch.manual_seed(seed)
    proposer, processor = _policy(model_dir, samples, TEMPERATURE)
    answers = [str(s["answer"]) for s in samples]
    mark = time.process_time()
    candidates = candidate_steps(proposer, answers, k=4, depths=(0, 1), max_steps=STEP_CAP)
    requests = [(c.question, c.path) for c in candidates]
    halves = [completion_values(proposer, requests, [answers[q] for q, _ in requests], completions=completions // 2,
                                greedy=False, max_depth=STEP_CAP) for _ in range(2)]
    scores = prm_scores(load_prm(prm_dir), PathEncoder(processor, _task(64), ImageModality(), samples), requests)
    sets: dict[tuple[int, int], list[int]] = {}
    for index, c in enumerate(candidates):
        sets.setdefault((c.question, c.depth), []).append(index)

    def metrics(keys):
        return sibling_value_metrics([([halves[0][i] for i in sets[k]], [halves[1][i] for i in sets[k]],
                                       [scores[i] for i in sets[k]]) for k in keys])

    out = {"all": metrics(list(sets))}
    for depth in (0, 1):
        out[f"depth{depth}"] = metrics([k for k in sets if k[1] == depth])
    out["distinct_texts"] = statistics.mean(float(len({candidates[i].path[-1] for i in v}) > 1) for v in sets.values())
    out["cpu_seconds"] = time.process_time() - mark
    out["candidates"] = [{"question": c.question, "depth": c.depth, "step": c.path[-1], "greedy_right": c.right,
                          "value_halves": [halves[0][i], halves[1][i]], "prm": scores[i]} for i, c in enumerate(candidates)]
    return out


IMPROVEMENTS = {"more_epochs": "prm_regression_e6", "answer_contrast": "prm_answer_contrast"}


def improved_prm(seed: int, improvement: str, runs: Path = RUNS, prms: Path = PRMS) -> dict:
    """Session 9's one PRM improvement, built on a seed's run trees and saved as prms/seedN/<IMPROVEMENTS[...]>:
    "more_epochs", session 8's regression PRM trained 3 further epochs on the same examples (same lr and batch, a
    fresh AdamW state); "answer_contrast" (ours), a fresh Bradley-Terry PRM on the trees' sibling pairs plus pairs of
    one tree's right and wrong final answers (`terminal_pairs`), session 7's pairwise settings."""
    import torch

    from mmpost.search.prm import build_prm, load_prm, prm_examples, sibling_pairs, terminal_pairs, train_pairwise_prm, train_prm
    from propa_churn import final_model
    from propa_search import PRM_EPOCHS, run_trees

    torch.set_num_threads(1)
    folder = prms / f"seed{seed}" / IMPROVEMENTS[improvement]
    info_file = folder.with_suffix(".json")
    if (folder / "value_head.json").is_file() and info_file.is_file():
        return json.loads(info_file.read_text())
    model_dir = final_model(runs / f"seed{seed}")
    trees, encoder = run_trees(model_dir, runs / f"seed{seed}" / "trees")
    mark = time.process_time()
    if improvement == "more_epochs":
        prm = load_prm(prms / f"seed{seed}" / "prm_regression")
        data = [e for q, (_, tree) in enumerate(trees) for e in prm_examples(tree, q)]
        losses = train_prm(prm, encoder, data, epochs=PRM_EPOCHS, lr=1e-3, batch_size=16, seed=seed + 1)
        info = {"examples": len(data)}
    else:
        prm = build_prm(model_dir, seed=seed, objective="pairwise")
        siblings = [p for q, (_, tree) in enumerate(trees) for p in sibling_pairs(tree, q)]
        answers = [p for q, (_, tree) in enumerate(trees) for p in terminal_pairs(tree, q)]
        losses = train_pairwise_prm(prm, encoder, siblings + answers, epochs=PRM_EPOCHS, lr=1e-3, batch_size=8, seed=seed)
        info = {"sibling_pairs": len(siblings), "terminal_pairs": len(answers)}
    info.update(losses=losses, train_cpu_seconds=time.process_time() - mark)
    prm.save(folder)
    info_file.write_text(json.dumps(info))
    return info


def in_sample_verifier(seed: int, prm: str, runs: Path = RUNS, prms: Path = PRMS) -> dict:
    """A PRM as a verifier of final answers on the trees it was trained on: its scores of every terminal node of the
    run's trees against the node's correctness (the same measure as `tree_accuracies`' terminal_ranking, in sample)."""
    import torch

    from mmpost.search.prm import StepJudgement, load_prm, prm_ranking_metrics, prm_scores
    from propa_churn import final_model
    from propa_search import run_trees

    torch.set_num_threads(1)
    trees, encoder = run_trees(final_model(runs / f"seed{seed}"), runs / f"seed{seed}" / "trees")
    terminals = [(q, tuple(tree.path(i)), node.reward > 0) for q, (_, tree) in enumerate(trees)
                 for i, node in enumerate(tree.nodes) if node.terminal]
    scores = prm_scores(load_prm(prms / f"seed{seed}" / prm), encoder, [(q, path) for q, path, _ in terminals])
    return prm_ranking_metrics([StepJudgement(q, 0, score, right) for (q, _, right), score in zip(terminals, scores)])


PARTS = ("greedy", "prm_search", "oracle_search", "siblings")


def oracle_seed(seed: int, which: str, count: int, completions: int, out: Path, runs: Path = RUNS, prms: Path = PRMS,
                prm: str = "prm_regression", parts: tuple = PARTS) -> dict:
    """Greedy, PRM search (PRM prms/seedN/<prm>), oracle search and the sibling headroom on one seed's policy; each
    part cached in out."""
    import torch

    from mmpost.search.prm import PATH_RULES
    from propa_churn import final_model

    torch.set_num_threads(1)
    model_dir = final_model(runs / f"seed{seed}")
    prm_dir = prms / f"seed{seed}" / prm
    samples = questions(which, count, runs)
    cache = out / f"seed{seed}" / (f"{which}{count}_N{completions}" + ("" if prm == "prm_regression" else f"_{prm}") + ".json")
    cache.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(cache.read_text()) if cache.is_file() else {}
    baseline = cache.parent / f"{which}{count}_N{completions}.json"
    if baseline != cache and baseline.is_file():  # greedy and the oracle search do not depend on the PRM: reuse them
        done = json.loads(baseline.read_text())
        for name in ("greedy", "oracle_search"):
            if name in done and name not in result:
                result[name] = done[name]
                result.setdefault("cpu_seconds", {})[name] = done["cpu_seconds"][name]
    result["questions"] = [s["id"] for s in samples]
    steps = {
        "greedy": lambda: greedy_accuracy(model_dir, samples),
        "prm_search": lambda: search_accuracies(model_dir, prm_dir, samples, TEMPERATURE, seed, ITERATIONS, PATH_RULES),
        "oracle_search": lambda: oracle_accuracies(model_dir, samples, seed, completions, PATH_RULES),
        "siblings": lambda: sibling_headroom(model_dir, prm_dir, samples, seed, completions),
    }
    for name, part in steps.items():
        if name in parts and name not in result:
            mark = time.process_time()
            result[name] = part()
            result.setdefault("cpu_seconds", {})[name] = time.process_time() - mark
            cache.write_text(json.dumps(result))
            print(f"seed {seed} {name}: {result['cpu_seconds'][name]:.0f} CPU s", flush=True)
    return result


def report(results: list[dict], seeds, which: str, count: int, completions: int, started: float,
           prm: str = "prm_regression", built: dict | None = None) -> str:
    from mmpost.search.prm import PATH_RULES
    from propa_fresh_heldout import paired_question_gain

    where = (f"the first {count} unscored held-out questions from index {HELDOUT_START}" if which == "heldout"
             else f"{count} training-split questions no run searched")
    greedy = [r["greedy"]["accuracy"] for r in results]
    lines = [f"# PROPA: PRM-guided vs oracle-guided search vs greedy ({where}; seeds {', '.join(map(str, seeds))})", "",
             f"Oracle: each evaluated step's value = the share of {completions} continuations sampled from the policy at "
             f"T {TEMPERATURE} that end right (step cap {STEP_CAP}); a terminal step's value is its correctness. It uses "
             "the answers: a bound, not a method. Search: >= 8 iterations and 2 final answers, cap 32, k = 4, candidates "
             f"at T {TEMPERATURE}; rule \"mean\" is the official final-path rule. PRM: {prm} (runs/propa_s8_search/seedN/{prm}).", "",
             "| strategy | accuracy (mean ± std) | per seed | − greedy (mean ± std) | per seed | SE (seeds) | SE (questions) | wins / losses vs greedy |",
             "|---|---|---|---|---|---|---|---|"]

    def row(label, per_question):
        values = [statistics.mean(q) for q in per_question]
        gains = [v - g for v, g in zip(values, greedy)]
        qmean, qse = paired_question_gain([0.0] * len(per_question[0]), [[a - b for a, b in zip(q, r["greedy"]["per_question"])]
                                                                    for q, r in zip(per_question, results)])
        wins = [sum(a > b for a, b in zip(q, r["greedy"]["per_question"])) for q, r in zip(per_question, results)]
        losses = [sum(a < b for a, b in zip(q, r["greedy"]["per_question"])) for q, r in zip(per_question, results)]
        se = _se(gains)
        lines.append(f"| {label} | {_ms(values)[1:]} | " + " / ".join(f"{v:.3f}" for v in values) + f" | {_ms(gains)} | "
                     + " / ".join(f"{g:+.3f}" for g in gains) + f" | {se:.3f} ({statistics.mean(gains) / se if se else float('nan'):+.1f}) | "
                     + f"{qse:.3f} ({qmean / qse if qse else float('nan'):+.1f}) | "
                     + ", ".join(f"{w}/{l}" for w, l in zip(wins, losses)) + " |")

    row("greedy", [r["greedy"]["per_question"] for r in results])
    for search, label in (("prm_search", "PRM-guided"), ("oracle_search", "oracle-guided")):
        for rule in PATH_RULES:
            row(f"{label}, rule {rule}", [r[search]["per_question"][rule] for r in results])
    lines += ["", "| search | terminal nodes per tree | distinct final steps per tree | some terminal right | CPU s per seed |",
              "|---|---|---|---|---|"]
    for search, label in (("prm_search", "PRM-guided"), ("oracle_search", "oracle-guided")):
        lines.append(f"| {label} | " + " / ".join(f"{r[search]['terminals_per_tree']:.1f}" for r in results) + " | "
                     + " / ".join(f"{r[search]['distinct_terminal_steps_per_tree']:.2f}" for r in results) + " | "
                     + " / ".join(f"{r[search]['any_terminal_right']:.3f}" for r in results) + " | "
                     + " / ".join(f"{r[search]['cpu_seconds']:.0f}" for r in results) + " |")
    if all("oracle_search" in r for r in results):
        parts = {
            "final-pick headroom: PRM trees' some-terminal-right − PRM search (rule mean)":
                [r["prm_search"]["any_terminal_right"] - r["prm_search"]["mean"] for r in results],
            "guidance effect: oracle trees' some-terminal-right − PRM trees'":
                [r["oracle_search"]["any_terminal_right"] - r["prm_search"]["any_terminal_right"] for r in results],
            "perfect final pick on the PRM's own trees − greedy":
                [r["prm_search"]["any_terminal_right"] - g for r, g in zip(results, greedy)],
            "oracle guidance without labels at the final pick (oracle trees, rule vote) − greedy":
                [r["oracle_search"]["vote"] - g for r, g in zip(results, greedy)],
        }
        lines += ["", "Where the oracle's gain comes from (mean ± std over seeds, per seed, SE over seeds):", ""]
        lines += [f"- {label}: {_ms(v)} (" + " / ".join(f"{x:+.3f}" for x in v) + f"; SE {_se(v):.3f})" for label, v in parts.items()]
    lines += ["", "The search's scores as a verifier of final answers: its terminal nodes' scores against their "
              "correctness (AUC over all terminals; over the trees whose terminals mix right and wrong, the top-scored "
              "terminal right vs a random terminal right, lift ± SE over those trees):", "",
              "| seed | search | AUC | mixed trees | top-scored terminal right | random terminal right | lift ± SE |",
              "|---|---|---|---|---|---|---|"]
    for seed, r in zip(seeds, results):
        for search, label in (("prm_search", "PRM-guided"), ("oracle_search", "oracle-guided")):
            m = r[search].get("terminal_ranking")
            if m:
                lines.append(f"| {seed} | {label} | {m['auc']:.3f} | {int(m['mixed_sets'])} | {m['pick_right']:.3f} | "
                             f"{m['random_pick_right']:.3f} | {m['pick_lift']:+.3f} ± {m['pick_lift_se']:.3f} |")
    lines += ["", f"Sibling headroom: the policy's 4 candidate steps (T {TEMPERATURE}) at depths 0 and 1 of its greedy chain, "
              f"each valued by {completions} sampled continuations (two halves of {completions // 2}); best gap = value "
              "of the best sibling − a random sibling's, cross-fitted (picked by one half, valued by the other); naive = "
              "the highest of the full estimates (biased up); PRM gap = the PRM's top pick − random; agreement = the PRM's "
              "top pick has the highest value (over the sets whose values differ) against chance; Spearman = rank "
              "correlation of PRM scores and values within a set.", "",
              "| seed | depth | sets | distinct texts | values differ | random pick value | best gap (cross-fitted) ± SE | best gap naive | PRM gap ± SE | agreement (chance) | Spearman (sets) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed, r in zip(seeds, results):
        for part in ("depth0", "depth1", "all"):
            m = r["siblings"][part]
            lines.append(f"| {seed} | {part.replace('depth', '') if part != 'all' else 'both'} | {int(m['sets'])} | "
                         + (f"{r['siblings']['distinct_texts']:.2f}" if part == "all" else "") + f" | {m['differ']:.2f} | "
                         f"{m['random_value']:.3f} | {m['best_gap']:+.3f} ± {m['best_gap_se']:.3f} | {m['best_gap_naive']:+.3f} | "
                         f"{m['ranker_gap']:+.3f} ± {m['ranker_gap_se']:.3f} | {m['agreement']:.2f} ({m['chance_agreement']:.2f}) | "
                         f"{m['spearman']:+.2f} ({int(m['spearman_sets'])}) |")
    for key in ("best_gap", "ranker_gap", "spearman", "agreement", "differ"):
        values = [r["siblings"]["all"][key] for r in results]
        lines.append(f"\nAll seeds, both depths, {key}: {_ms(values)} (per seed " + " / ".join(f"{v:+.3f}" for v in values) + ")")
    for seed, info in (built or {}).items():
        lines.append(f"\nPRM {prm}, seed {seed}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("losses", "train_cpu_seconds"))
                     + "; loss per epoch " + " → ".join(f"{v:.4f}" for v in info["losses"]) + f"; {info['train_cpu_seconds']:.0f} CPU s to train.")
    cpu = {k: [r["cpu_seconds"].get(k, float("nan")) for r in results] for k in ("greedy", "prm_search", "oracle_search", "siblings")}
    lines.append(f"\nCPU s per seed (shared 2-core machine): " + "; ".join(f"{k} " + " / ".join(f"{v:.0f}" for v in vs)
                                                                          for k, vs in cpu.items())
                 + f"; oracle values estimated per seed " + " / ".join(str(r["oracle_search"]["values_estimated"]) for r in results)
                 + f"; this invocation {time.perf_counter() - started:.0f} s wall.")
    return "\n".join(lines)


def main(argv=None) -> int:
    from learning_report import write_results

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=["heldout", "train"], default="heldout")
    parser.add_argument("--questions", type=int, default=128)
    parser.add_argument("--completions", type=int, default=16, help="Monte-Carlo continuations per valued step (even)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--prms", type=Path, default=PRMS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--name", default="learning_propa_s9_oracle")
    parser.add_argument("--prm", default="prm_regression", help="the PRM folder under --prms/seedN")
    parser.add_argument("--improve", choices=sorted(IMPROVEMENTS), default=None,
                        help="build this PRM improvement per seed (saved under --prms/seedN) and use it as --prm")
    parser.add_argument("--in-sample", nargs="+", default=None, metavar="PRM",
                        help="only measure these PRM folders as verifiers on their own training trees")
    args = parser.parse_args(argv)
    if args.completions < 2 or args.completions % 2:
        parser.error("--completions must be even (the sibling headroom splits them in two halves)")
    started = time.perf_counter()
    if args.in_sample:
        jobs = [{"seed": s, "prm": p, "runs": args.runs, "prms": args.prms} for p in args.in_sample for s in args.seeds]
        found = _pool(in_sample_verifier, jobs, args.parallel)
        lines = ["# PROPA PRMs as verifiers of final answers on the trees they were trained on (each seed's run trees)", "",
                 "| PRM | seed | terminals | AUC | mixed trees | top-scored terminal right | random terminal right | lift ± SE |",
                 "|---|---|---|---|---|---|---|---|"]
        for job, m in zip(jobs, found):
            lines.append(f"| {job['prm']} | {job['seed']} | {int(m['candidates'])} | {m['auc']:.3f} | {int(m['mixed_sets'])} | "
                         f"{m['pick_right']:.3f} | {m['random_pick_right']:.3f} | {m['pick_lift']:+.3f} ± {m['pick_lift_se']:.3f} |")
        lines.append(f"\nThis invocation {time.perf_counter() - started:.0f} s wall (shared 2-core machine).")
        write_results(args.name, "\n".join(lines), {"jobs": [{k: str(v) for k, v in j.items()} for j in jobs], "results": found})
        print("\n".join(lines))
        return 0
    built = {}
    if args.improve:
        args.prm = IMPROVEMENTS[args.improve]
        built = dict(zip(args.seeds, _pool(improved_prm, [{"seed": s, "improvement": args.improve, "runs": args.runs,
                                                           "prms": args.prms} for s in args.seeds], args.parallel)))
    results = _pool(oracle_seed, [{"seed": s, "which": args.set, "count": args.questions, "completions": args.completions,
                                   "out": args.out, "runs": args.runs, "prms": args.prms, "prm": args.prm}
                                  for s in args.seeds], args.parallel)
    text = report(results, args.seeds, args.set, args.questions, args.completions, started, args.prm, built)
    write_results(args.name, text, {"seeds": args.seeds, "built": built, "setting": {k: str(v) if isinstance(v, Path) else v
                                                                     for k, v in vars(args).items()}, "results": results})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
