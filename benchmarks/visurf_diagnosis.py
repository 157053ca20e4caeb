"""Why ViSurf trails SFT on shapes: how much supervised signal the injected label gets, read from training runs.

    D=runs/visurf-s7/diag/shapes E=runs/visurf-s7/seeds345/shapes M=runs/visurf-s7/sft_plus_grpo/shapes/chord
    python benchmarks/visurf_diagnosis.py --visurf $D/visurf/seed0 $E/visurf/seed{3,4,5} \
        --sft $D/sft/seed0 $E/sft/seed{3,4,5} --mix $M/seed{0,1,2,3,4,5} --more learning_visurf_s7_seeds345 \
        --control learning_visurf_s7_sft_plus_grpo learning_visurf_s7_sft_plus_grpo_seeds345 \
        --checkpoints "warm start=" "SFT seed 0=$D/sft/seed0/checkpoints/step_100/model" ...

(the runs: `benchmarks/learning.py --methods ... --out runs/visurf-s7/...`, as each results file says).

Reads the runs' metrics.jsonl (`visurf/*`: the label's advantage, its share of the step's advantage-weighted tokens,
the reward controls; `diag/label_logprob*`: log pi(y*|q) of the step's labels before the update, both methods) and
the committed 3-seed results (learning.json at lr 5e-4, learning_lr1e-3.json) for the paired per-seed differences.
Writes benchmarks/results/<name>.{md,json}. Not a test; the pure parts are tested in tests/test_visurf_diagnosis.py.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
KINDS = ("color", "count", "position")


def label_advantage(successes: int, group_size: int) -> float:
    """GRPO advantage of a label injected as member G+1 of a group whose rollouts share one format score and of which
    `successes` are right (the label is right; its format part is the rollouts' mean, so only accuracy differs):
    with m = successes + 1 ones among n = G + 1, A = (1 - m/n) / sqrt(m (n - m) / (n (n - 1))) = sqrt((n-m)(n-1)/(m n))."""
    n, m = group_size + 1, successes + 1
    return math.sqrt((n - m) * (n - 1) / (m * n))


def paired(a: list[float], b: list[float]) -> dict:
    """Per-seed differences a - b (same seeds), their mean, std and the standard error of the mean."""
    diff = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.mean(diff)
    std = statistics.stdev(diff) if len(diff) > 1 else float("nan")
    se = std / math.sqrt(len(diff))
    return {"per_seed": diff, "mean": mean, "std": std, "se": se, "in_se": mean / se if se else float("nan")}


def weighted_window(records: list[dict], key: str, weight_key: str | None, lo: int, hi: int) -> float:
    """Mean of `key` over steps lo..hi-1 (records in step order), each step weighted by `weight_key` (e.g. how many
    labels of a kind the step had) where given; steps without the key are left out."""
    num = den = 0.0
    for record in records[lo:hi]:
        value = record.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        weight = float(record.get(weight_key, 0.0)) if weight_key else 1.0
        num, den = num + weight * value, den + weight
    return num / den if den else float("nan")


def heldout_label_logprobs(model: Path | None, batch_size: int = 16) -> dict[str, dict[str, float]]:
    """log pi(y*|q) (summed over the label's tokens, EOS included) and pi(y*|q) of the 256 held-out questions' labels
    under a checkpoint's model (None: the warm start), mean per question kind and over all: how well training taught
    the policy to state the right answer, read the same way for SFT and ViSurf."""
    import torch

    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.experience import BatchBuilder, RowKind, StepContext
    from mmpost.trainer import decode_samples

    config = load_config(REPO / "recipes" / "visurf.yaml", ["train.threads=1", "train.progress=false",
                                                             "train.output_dir=runs/visurf-s7/heldout-logprob"])
    run = build_run(config, policy_path=None if model is None else str(model))
    rows = list(run.heldout_rows)
    ctx = StepContext(run.policy, run.backend, run.sampling, 0, run.task.accuracy_reward)
    sums: dict[str, list[float]] = {}
    options = run.plan.loss.passes.pass_options(with_grad=False, full_distribution=False)
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            samples = decode_samples(run, rows[start:start + batch_size])[0]
            builder = BatchBuilder(samples, run.policy.encode_prompts(samples))
            builder.add_demonstrations(ctx, source=RowKind.EXPERT, is_sft=True)
            batch = builder.build(ctx)
            index = torch.arange(len(batch))
            logprobs, _ = run.plan.loss.policy.logprobs(run.model, batch, index, **options)
            per_row = (logprobs.float() * batch.completion_mask).sum(1)
            for sample, value in zip(samples, per_row.tolist()):
                for key in ("all", str(sample.get("kind"))):
                    entry = sums.setdefault(key, [0.0, 0.0, 0.0])
                    entry[0] += value
                    entry[1] += math.exp(value)
                    entry[2] += 1
    return {k: {"logprob": v[0] / v[2], "prob": v[1] / v[2], "questions": v[2]} for k, v in sums.items()}


def read(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def committed_pairs(more: str | None = None) -> dict:
    """Paired differences from the committed rows (seeds 0-2 at lr 5e-4 and 1e-3) and, with `more` (a results name
    holding the same methods at other seeds, lr 5e-4), from all seeds of both together."""
    out = {}
    sources = [("5e-4", ["learning.json"]), ("1e-3", ["learning_lr1e-3.json"])]
    if more:
        sources.append((f"5e-4, seeds of learning.json and {more}", ["learning.json", f"{more}.json"]))
    for lr, names in sources:
        runs: dict = {}
        for name in names:
            for method, values in json.loads((RESULTS / name).read_text())["runs"].items():
                runs.setdefault(method, []).extend(values)
        after = {m: [r["after"] for r in runs[m]] for m in ("SFT", "GRPO", "ViSurf")}
        kinds = {m: {k: [r["summary"][f"heldout_accuracy_{k}_after"] for r in runs[m]] for k in KINDS}
                 for m in ("SFT", "GRPO", "ViSurf")}
        out[lr] = {"visurf_minus_sft": paired(after["ViSurf"], after["SFT"]),
                   "visurf_minus_grpo": paired(after["ViSurf"], after["GRPO"]),
                   "by_kind_visurf_minus_sft": {k: paired(kinds["ViSurf"][k], kinds["SFT"][k]) for k in KINDS}}
    return out


def control_pairs(control: list[str], more: str | None) -> dict:
    """The SFT + GRPO control (results names holding one row, any label) against SFT, ViSurf and GRPO at the same
    seeds (learning.json and `more`), paired by seed: overall and per question kind."""
    def by_seed(names: list[str], label: str | None) -> dict[int, dict]:
        out = {}
        for name in names:
            runs = json.loads((RESULTS / name).read_text())["runs"]
            for run in runs[label] if label else next(iter(runs.values())):
                out[run["seed"]] = run
        return out

    mine = by_seed([f"{n}.json" for n in control], None)
    result = {}
    for method in ("SFT", "ViSurf", "GRPO"):
        theirs = by_seed(["learning.json"] + ([f"{more}.json"] if more else []), method)
        seeds = sorted(set(mine) & set(theirs))
        result[method] = {"seeds": seeds, "all": paired([mine[s]["after"] for s in seeds], [theirs[s]["after"] for s in seeds])}
        for kind in KINDS:
            key = f"heldout_accuracy_{kind}_after"
            result[method][kind] = paired([mine[s]["summary"][key] for s in seeds], [theirs[s]["summary"][key] for s in seeds])
    return result


def fmt(x: float, sign: bool = False) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:+.3f}" if sign else f"{x:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visurf", nargs="+", type=Path, required=True, help="ViSurf run folders (metrics.jsonl)")
    parser.add_argument("--sft", nargs="*", type=Path, default=[], help="SFT run folders, same seeds")
    parser.add_argument("--mix", nargs="*", type=Path, default=[],
                        help="runs of the SFT + GRPO control (chord, constant mu 0.5, cross-entropy): label log-probs")
    parser.add_argument("--more", help="a results name with SFT, GRPO and ViSurf at more seeds (lr 5e-4)")
    parser.add_argument("--control", nargs="*", default=[], help="results names of the SFT + GRPO control's runs")
    parser.add_argument("--name", default="learning_visurf_s7_diagnosis")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--checkpoints", nargs="*", default=[],
                        help="LABEL=MODEL_DIR (LABEL= for the warm start): the held-out labels' log-probs under each")
    args = parser.parse_args(argv)

    pairs = committed_pairs(args.more)
    summary: dict = {"pairs": pairs}
    lines = ["## ViSurf − SFT and ViSurf − GRPO, paired by seed (held-out greedy after; seeds 0-2 from the committed rows)\n",
             "| lr | pair | per seed | mean | std | SE | mean / SE |", "|---|---|---|---|---|---|---|"]
    for lr, p in pairs.items():
        for label, key in (("ViSurf − SFT", "visurf_minus_sft"), ("ViSurf − GRPO", "visurf_minus_grpo")):
            d = p[key]
            lines.append(f"| {lr} | {label} | {' / '.join(fmt(x, True) for x in d['per_seed'])} | {fmt(d['mean'], True)} "
                         f"| {fmt(d['std'])} | {fmt(d['se'])} | {d['in_se']:+.1f} |")
        for kind, d in p["by_kind_visurf_minus_sft"].items():
            lines.append(f"| {lr} | ViSurf − SFT, {kind} | {' / '.join(fmt(x, True) for x in d['per_seed'])} "
                         f"| {fmt(d['mean'], True)} | {fmt(d['std'])} | {fmt(d['se'])} | {d['in_se']:+.1f} |")

    if args.control:
        control = control_pairs(args.control, args.more)
        summary["control_pairs"] = control
        lines += ["", "## The SFT + GRPO control (chord, constant mu 0.5, cross-entropy: the labels at SFT's weight next to "
                  "the same rollouts) against each method, paired by seed\n",
                  "| control − | seeds | all: per seed | mean | SE | mean / SE | " + " | ".join(f"{k}: mean (SE)" for k in KINDS) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(KINDS)]
        for method, d in control.items():
            a = d["all"]
            lines.append(f"| {method} | {', '.join(map(str, d['seeds']))} | {' / '.join(fmt(x, True) for x in a['per_seed'])} "
                         f"| {fmt(a['mean'], True)} | {fmt(a['se'])} | {a['in_se']:+.1f} | "
                         + " | ".join(f"{fmt(d[k]['mean'], True)} ({fmt(d[k]['se'])})" for k in KINDS) + " |")

    lines += ["", "## The label's advantage by how many of the 8 rollouts are right (GRPO over G + 1 = 9, format "
              "neutral)\n", "| right rollouts | label advantage | with the recipe's cap 2.0 |", "|---|---|---|"]
    table = {k: label_advantage(k, 8) for k in range(9)}
    for k, a in table.items():
        lines.append(f"| {k} | {a:.3f} | {min(a, 2.0):.3f} |")

    runs = {"ViSurf": [read(d) for d in args.visurf], "SFT": [read(d) for d in args.sft],
            "SFT + GRPO": [read(d) for d in args.mix]}
    folders = {"ViSurf": args.visurf, "SFT": args.sft, "SFT + GRPO": args.mix}
    w = args.window
    summary.update({"label_advantage_by_successes": table, "runs": {}})
    for method, records_list in runs.items():
        for index, records in enumerate(records_list):
            n = len(records)
            windows = {"first": (0, w), "last": (n - w, n), "all": (0, n)}
            entry = {}
            keys = ["diag/label_logprob"] + [f"diag/label_logprob/{k}" for k in KINDS]
            if method == "ViSurf":
                keys += ["visurf/label_advantage_mean", "visurf/label_advantage_uncapped_mean",
                         "visurf/label_advantage_positive_fraction", "visurf/label_advantage_negative_fraction",
                         "visurf/label_advantage_capped_fraction",
                         "visurf/label_zeroed_fraction", "visurf/label_sft_scale", "visurf/label_weight_share",
                         "reward/shapes_accuracy", "diag/zero_variance_group_fraction"]
            for key in keys:
                entry[key] = {name: weighted_window(records, key, None, lo, hi) for name, (lo, hi) in windows.items()}
            if method == "ViSurf":
                for kind in KINDS:
                    for key in ("visurf/label_advantage_mean", "visurf/label_advantage_positive_fraction",
                                "visurf/rollout_accuracy"):
                        entry[f"{key}/{kind}"] = {name: weighted_window(records, f"{key}/{kind}", f"visurf/labels/{kind}", lo, hi)
                                                  for name, (lo, hi) in windows.items()}
            summary["runs"].setdefault(method, []).append({"dir": str(folders[method][index]), **entry})

    def row(label: str, method: str, key: str) -> str:
        values = [r[key] for r in summary["runs"].get(method, []) if key in r]
        if not values:
            return ""
        cells = [" / ".join(fmt(v[name]) for v in values) for name in ("first", "last", "all")]
        return f"| {label} | {method} | {cells[0]} | {cells[1]} | {cells[2]} |"

    lines += ["", f"## Training-side signal (first {w} steps, last {w} steps, all; one value per run)\n",
              "Runs, in column order: " + "; ".join(f"{m}: {', '.join(f.parent.name + '/' + f.name for f in fs)}"
                                                    for m, fs in folders.items() if fs) + "\n",
              "| quantity | method | first | last | all |", "|---|---|---|---|---|"]
    spec = [("label's advantage (after the controls)", "visurf/label_advantage_mean"),
            ("label's advantage before the controls", "visurf/label_advantage_uncapped_mean"),
            ("share of labels with advantage > 0", "visurf/label_advantage_positive_fraction"),
            ("share of labels with advantage < 0", "visurf/label_advantage_negative_fraction"),
            ("share of labels the cap changed", "visurf/label_advantage_capped_fraction"),
            ("share zeroed (solved)", "visurf/label_zeroed_fraction"),
            ("label term as a multiple of SFT's (token_mean)", "visurf/label_sft_scale"),
            ("labels' share of |A|·tokens", "visurf/label_weight_share"),
            ("rollout accuracy", "reward/shapes_accuracy"),
            ("flat groups", "diag/zero_variance_group_fraction")]
    for kind in KINDS:
        spec += [(f"{kind}: label's advantage", f"visurf/label_advantage_mean/{kind}"),
                 (f"{kind}: share of labels with advantage > 0", f"visurf/label_advantage_positive_fraction/{kind}"),
                 (f"{kind}: rollout accuracy", f"visurf/rollout_accuracy/{kind}")]
    for label, key in spec:
        if text := row(label, "ViSurf", key):
            lines.append(text)
    for key in ["diag/label_logprob"] + [f"diag/label_logprob/{k}" for k in KINDS]:
        for method in ("SFT", "ViSurf", "SFT + GRPO"):
            if text := row(f"log π(label) {key.split('/', 2)[-1] if key.count('/') == 2 else 'all'}", method, key):
                lines.append(text)
    # Same seed, same sampler: both runs see the same prompts at each step, so the per-step difference of the
    # labels' log-probs is paired (what ViSurf's label term has taught, against SFT's, on the same questions).
    for method in ("ViSurf", "SFT + GRPO"):
        if not (runs["SFT"] and runs[method]):
            continue
        sft_by_seed = {folder.name: records for folder, records in zip(folders["SFT"], runs["SFT"])}
        matched = [(records, sft_by_seed[folder.name]) for folder, records in zip(folders[method], runs[method])
                   if folder.name in sft_by_seed]
        if not matched:
            continue
        lines += ["", f"## log π(label) on the step's own training prompts, {method} − SFT paired by step, same seed "
                  f"({len(matched)} pairs)\n", "| kind | first | last | all |", "|---|---|---|---|"]
        store = summary.setdefault("label_logprob_minus_sft", {}).setdefault(method, {})
        for kind in ("", *KINDS):
            key = "diag/label_logprob" + (f"/{kind}" if kind else "")
            cells = []
            for lo, hi in ((0, w), (-w, None), (0, None)):
                diffs = [v[key] - b_[key] for a, b in matched for v, b_ in zip(a[lo:hi], b[lo:hi])
                         if v.get(key) is not None and b_.get(key) is not None and not math.isnan(v[key])
                         and not math.isnan(b_[key])]
                cells.append(statistics.mean(diffs) if diffs else float("nan"))
            store[kind or "all"] = cells
            lines.append(f"| {kind or 'all'} | " + " | ".join(fmt(c, True) for c in cells) + " |")
    if args.checkpoints:
        lines += ["", "## The held-out labels under each model: mean log π(y*|q) (π(y*|q)), 256 questions\n",
                  "| model | all | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
        summary["heldout_label_logprob"] = {}
        for spec in args.checkpoints:
            label, _, folder = spec.partition("=")
            values = heldout_label_logprobs(Path(folder) if folder else None)
            summary["heldout_label_logprob"][label] = values
            cells = [f"{values[k]['logprob']:.3f} ({values[k]['prob']:.3f})" if k in values else "-" for k in ("all", *KINDS)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.name}.md").write_text(text)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
