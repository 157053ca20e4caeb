"""GuirlVG on gui_click, diagnosed: where a model's clicks miss, which tokens carry its sampling entropy, what each
reward part contributes to the GRPO advantage, and what a run's KL controller did.

    python benchmarks/gui_click_diagnosis.py --models warm=artifacts/tiny-qwen2.5-vl-gui \
        after=runs/s6/gui_click/seed0/checkpoints/step_40/model --metrics runs/s6/gui_click/seed0/metrics.jsonl \
        --out runs/s6/gui_diag.json --markdown benchmarks/results/learning_gui_s6_diagnosis.md

For each model, on three sets of screens: the first N training screens (the warm start's SFT saw each ~19 times),
N training screens the warm start never saw (indices 512.., or `--sft-train-size`.., of a larger training set: same
split, same generator),
and the held-out screens the benchmark scores:
- greedy: in-box accuracy; each miss's pixel distance outside the gold box along x and along y (0 when the click is
  within the box's span on that axis), and whether the click landed on another element (a wrong element) or on none;
- k samples at the training temperature: sampled in-box accuracy, and the per-token entropy of the sampling
  distribution split by token kind (tokens with a digit, the rest), exact over the vocabulary from generate's scores;
- the recipe's reward parts on those samples, within each prompt's group of k: how much of the weighted reward's
  within-group variance each part carries (the GRPO advantage is that centred reward over its std).
With `--metrics`, a run's per-step numbers (reward parts, KL, entropy, flat groups, clip fraction, the Adversarial KL
factor β_t/β_0) are summarised in windows of `--window` steps.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO  # noqa: E402

SFT_TRAIN_SCREENS = 512  # the warm start's training set (tasks/gui_click/task.py DEFAULT_SIZES)
CPU_OVERRIDES = ["train.progress=false", "train.threads=1"]


# -- pure functions ----------------------------------------------------------------------------------
def axis_miss(point: tuple[float, float], box: tuple[float, float, float, float]) -> tuple[float, float]:
    """(pixels outside the box along x, along y): 0 on an axis where the point is within the box's span."""
    x, y = point
    x1, y1, x2, y2 = box
    return max(x1 - x, 0.0, x - x2), max(y1 - y, 0.0, y - y2)


def inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def variance_shares(groups: list[list[dict[str, float]]], weights: dict[str, float]) -> dict[str, float]:
    """Each part's share of the weighted reward's within-group variance: sum over groups of
    cov(w_p r_p, R) / var(R), with R = sum_p w_p r_p (shares add up to 1; a part that moves against the total
    has a negative share). groups: per prompt, its k samples' part values."""
    covariance = {name: 0.0 for name in weights}
    total = 0.0
    for group in groups:
        totals = [sum(weights[n] * s[n] for n in weights) for s in group]
        mean_total = statistics.fmean(totals)
        for name in weights:
            values = [weights[name] * s[name] for s in group]
            mean = statistics.fmean(values)
            covariance[name] += sum((v - mean) * (t - mean_total) for v, t in zip(values, totals))
        total += sum((t - mean_total) ** 2 for t in totals)
    return {name: (c / total if total else float("nan")) for name, c in covariance.items()}


def greedy_summary(records: list[dict]) -> dict:
    """In-box accuracy and the misses' geometry from per-screen greedy records."""
    n = len(records)
    misses = [r for r in records if not r["in_box"]]
    parsed = [r for r in misses if r["point"] is not None]
    dx = [r["miss_x"] for r in parsed]
    dy = [r["miss_y"] for r in parsed]

    def mean(values):
        return statistics.fmean(values) if values else float("nan")

    return {
        "screens": n, "greedy_accuracy": (n - len(misses)) / n, "misses": len(misses), "unparsed": len(misses) - len(parsed),
        "miss_on_other_element": sum(r["on_other_element"] for r in parsed),
        "miss_on_no_element": sum(not r["on_other_element"] for r in parsed),
        "miss_x_only": sum(x > 0 and y == 0 for x, y in zip(dx, dy)),
        "miss_y_only": sum(y > 0 and x == 0 for x, y in zip(dx, dy)),
        "miss_both_axes": sum(x > 0 and y > 0 for x, y in zip(dx, dy)),
        "mean_px_outside_x": mean(dx), "mean_px_outside_y": mean(dy),
        "median_px_outside": statistics.median([math.hypot(x, y) for x, y in zip(dx, dy)]) if dx else float("nan"),
        "misses_within_4px": sum(math.hypot(x, y) <= 4 for x, y in zip(dx, dy)),
        "mean_gold_box_wh": [mean([r["box"][2] - r["box"][0] for r in records]), mean([r["box"][3] - r["box"][1] for r in records])],
    }


def greedy_flips(reference: list[dict], other: list[dict]) -> dict:
    """Greedy in-box right -> wrong and wrong -> right from `reference` to `other` (same screens, same order), and how
    many screens keep the same click point."""
    pairs = list(zip(reference, other, strict=True))
    return {"right_to_wrong": sum(a["in_box"] and not b["in_box"] for a, b in pairs),
            "wrong_to_right": sum(b["in_box"] and not a["in_box"] for a, b in pairs),
            "same_point": sum(a["point"] is not None and a["point"] == b["point"] for a, b in pairs), "screens": len(pairs)}


def summarise_metrics(rows: list[dict], window: int, initial_coef: float) -> list[dict]:
    """A run's per-step metrics averaged over windows of `window` steps."""
    keys = {"in_box": "reward/gui_point_in_box", "distance": "reward/gui_point_distance", "format": "reward/gui_click_format",
            "reward": "reward/mean", "kl_to_start": "diag/kl_to_start", "entropy": "diag/entropy",
            "flat_groups": "diag/zero_variance_group_fraction", "clip_fraction": "loss/clip_fraction",
            "kl_coef": "loss/kl_coef", "grad_norm": "perf/grad_norm"}
    out = []
    for start in range(0, len(rows), window):
        part = rows[start : start + window]
        entry = {"steps": f"{part[0]['step']}-{part[-1]['step']}"}
        for name, key in keys.items():
            values = [r[key] for r in part if key in r]
            entry[name] = statistics.fmean(values) if values else float("nan")
        entry["kl_factor"] = entry.pop("kl_coef") / initial_coef
        entry["kl_factor_max"] = max(r.get("loss/kl_coef", initial_coef) for r in part) / initial_coef
        out.append(entry)
    return out


# -- plumbing ----------------------------------------------------------------------------------------
def evaluate(config, folder: str, splits: dict, *, k: int, temperature: float, seed: int) -> dict:
    import torch

    from mmpost.builder import build_run
    from mmpost.diagnostics import token_entropy
    from mmpost.registry import REWARDS
    from mmpost.rollout.base import SamplingParams
    from mmpost.trainer import decode_samples
    from mmpost.types import collate_prompts
    from mmpost.modalities.gui.processing import convert_box
    from mmpost.modalities.gui.rewards import predicted_point

    warm = Path(config.model.path)
    run = build_run(config, policy_path=None if Path(folder).resolve() == warm.resolve() else folder)
    backend, tokenizer = run.backend, run.policy.vocabulary.tokenizer
    reward_specs = [(spec["name"], spec.get("weight", 1.0), dict(spec.get("args") or {})) for spec in config.rewards]
    weights = {name: weight for name, weight, _ in reward_specs}
    has_digit = {}

    def digit_token(token_id: int) -> bool:
        if token_id not in has_digit:
            has_digit[token_id] = any(c.isdigit() for c in tokenizer.decode([token_id]))
        return has_digit[token_id]

    result = {}
    for split, rows in splits.items():
        greedy_records, groups = [], []
        entropy = {"digit": [0.0, 0], "other": [0.0, 0]}
        sampled_in_box = []
        torch.manual_seed(seed)
        for start in range(0, len(rows), 8):
            batch = rows[start : start + 8]
            samples = decode_samples(run, batch)[0]
            prompts = run.policy.encode_prompts(samples)
            greedy = backend.generate(prompts, samples, SamplingParams(n=1, greedy=True, max_new_tokens=16))
            texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in greedy.completion_ids]
            for row, sample, text in zip(batch, samples, texts):
                info = sample["decoded"]["gui"]
                sizes = dict(original_size=tuple(info["image_size"]), model_size=tuple(info["model_size"]))
                box = tuple(info["box"])
                others = [tuple(convert_box(e["box"], "pixels", info["coordinates"], **sizes)) for e in row["elements"]
                          if list(e["box"]) != list(row["box"])]
                point = predicted_point(text)
                record = {"id": row["id"], "text": text, "box": list(box), "point": point,
                          "in_box": point is not None and inside(point, box)}
                if point is not None and not record["in_box"]:
                    record["miss_x"], record["miss_y"] = axis_miss(point, box)
                    record["on_other_element"] = any(inside(point, o) for o in others)
                greedy_records.append(record)
            if not k:  # greedy only
                continue
            # k samples per screen at the training temperature, with the distribution each token was drawn from.
            inputs = collate_prompts(prompts, backend.pad_token_id)
            model = backend.model
            model.eval()
            with torch.no_grad():
                out = model.generate(**inputs, do_sample=True, temperature=temperature, top_p=1.0, top_k=None,
                                     max_new_tokens=16, num_return_sequences=k, eos_token_id=backend.eos_token_ids,
                                     pad_token_id=backend.pad_token_id, suppress_tokens=backend.suppressed_token_ids or None,
                                     output_scores=True, return_dict_in_generate=True)
            width = inputs["input_ids"].shape[1]
            new = out.sequences[:, width:]
            log_dist = torch.log_softmax(torch.stack(out.scores, dim=1).float(), dim=-1)
            ent = token_entropy(log_dist)
            eos = set(backend.eos_token_ids)
            completions = []
            for row_index, ids in enumerate(new.tolist()):
                length = next((j + 1 for j, t in enumerate(ids) if t in eos), len(ids))
                for j in range(length):
                    kind = "digit" if digit_token(ids[j]) else "other"
                    entropy[kind][0] += float(ent[row_index, j])
                    entropy[kind][1] += 1
                completions.append(tokenizer.decode(ids[:length], skip_special_tokens=True))
            expanded = [s for s in samples for _ in range(k)]
            parts = {name: REWARDS.get(name)(completions, expanded, **args) for name, _, args in reward_specs}
            for i in range(len(samples)):
                group = [{name: parts[name][i * k + j] for name in parts} for j in range(k)]
                groups.append(group)
                sampled_in_box += [g["gui_point_in_box"] for g in group]
        if not k:
            result[split] = {"greedy": greedy_summary(greedy_records), "records": greedy_records}
            continue
        total_tokens = entropy["digit"][1] + entropy["other"][1]
        result[split] = {
            "greedy": greedy_summary(greedy_records),
            "sampled_in_box": statistics.fmean(sampled_in_box),
            "pass_at_k": statistics.fmean(max(g["gui_point_in_box"] for g in group) for group in groups),
            "entropy_digit_tokens": entropy["digit"][0] / max(entropy["digit"][1], 1),
            "entropy_other_tokens": entropy["other"][0] / max(entropy["other"][1], 1),
            "entropy_share_digit_tokens": entropy["digit"][0] / max(entropy["digit"][0] + entropy["other"][0], 1e-12),
            "digit_token_fraction": entropy["digit"][1] / max(total_tokens, 1),
            "reward_part_means": {n: statistics.fmean(g[n] for group in groups for g in group) for n in weights},
            "within_group_variance_share": variance_shares(groups, weights),
            "flat_groups": sum(len({round(sum(weights[n] * g[n] for n in weights), 9) for g in group}) == 1
                               for group in groups) / len(groups),
            "records": greedy_records,
        }
    return result


def markdown(report: dict) -> str:
    lines = [f"k = {report['k']} samples per screen at T {report['temperature']}; rewards {report['weights']}.", "",
             "| model | screens | greedy in box | sampled in box | pass@k | misses: other element / no element / unparsed | "
             "misses off in x only / y only / both | mean px outside box x / y | median px outside | misses ≤ 4 px | "
             "entropy: digit / other tokens (digit share of entropy) |", "|---" * 11 + "|"]
    for name, model in report["models"].items():
        for split, s in model.items():
            if split in ("folder", "flips"):
                continue
            g = s["greedy"]
            if "sampled_in_box" not in s:
                lines.append(f"| {name} | {split} ({g['screens']}) | {g['greedy_accuracy']:.3f} | - | - | "
                             f"{g['miss_on_other_element']} / {g['miss_on_no_element']} / {g['unparsed']} | "
                             f"{g['miss_x_only']} / {g['miss_y_only']} / {g['miss_both_axes']} | {g['mean_px_outside_x']:.1f} / "
                             f"{g['mean_px_outside_y']:.1f} | {g['median_px_outside']:.1f} | {g['misses_within_4px']} | - |")
                continue
            lines.append(
                f"| {name} | {split} ({g['screens']}) | {g['greedy_accuracy']:.3f} | {s['sampled_in_box']:.3f} | "
                f"{s['pass_at_k']:.3f} | {g['miss_on_other_element']} / {g['miss_on_no_element']} / {g['unparsed']} | "
                f"{g['miss_x_only']} / {g['miss_y_only']} / {g['miss_both_axes']} | {g['mean_px_outside_x']:.1f} / "
                f"{g['mean_px_outside_y']:.1f} | {g['median_px_outside']:.1f} | {g['misses_within_4px']} | "
                f"{s['entropy_digit_tokens']:.3f} / {s['entropy_other_tokens']:.3f} ({s['entropy_share_digit_tokens']:.2f}) |")
    sampled = any("reward_part_means" in s for m in report["models"].values() for s in m.values() if isinstance(s, dict))
    lines += [] if not sampled else ["", "Reward parts on the k samples (mean) and each part's share of the weighted reward's within-group "
              "variance (what the GRPO advantage follows):", "",
              "| model | screens | " + " | ".join(f"{n} mean" for n in report["weights"]) + " | "
              + " | ".join(f"{n} share" for n in report["weights"]) + " | flat groups |",
              "|---" * (3 + 2 * len(report["weights"])) + "|"]
    for name, model in report["models"].items():
        for split, s in model.items():
            if split in ("folder", "flips") or "reward_part_means" not in s:
                continue
            lines.append(f"| {name} | {split} | " + " | ".join(f"{s['reward_part_means'][n]:.3f}" for n in report["weights"])
                         + " | " + " | ".join(f"{s['within_group_variance_share'][n]:+.2f}" for n in report["weights"])
                         + f" | {s['flat_groups']:.3f} |")
    flipped = [(n, m["flips"]) for n, m in report["models"].items() if "flips" in m]
    if flipped:
        first = next(iter(report["models"]))
        lines += ["", f"Greedy flips from {first} (right → wrong / wrong → right; screens whose click point is unchanged):", "",
                  "| model | " + " | ".join(flipped[0][1]) + " |", "|---" * (1 + len(flipped[0][1])) + "|"]
        for name, flips in flipped:
            lines.append(f"| {name} | " + " | ".join(f"{f['right_to_wrong']} / {f['wrong_to_right']} ({f['same_point']} of "
                                                   f"{f['screens']} unchanged)" for f in flips.values()) + " |")
    for label, windows in report.get("runs", {}).items():
        lines += ["", f"Per-step numbers of {label} (means over windows):", "",
                  "| steps | in box | distance | format | reward | KL to start | entropy | flat groups | clip frac. | "
                  "KL factor β_t/β_0 (mean / max) | grad norm |", "|---" * 11 + "|"]
        for w in windows:
            lines.append(f"| {w['steps']} | {w['in_box']:.3f} | {w['distance']:.3f} | {w['format']:.3f} | {w['reward']:.3f} | "
                         f"{w['kl_to_start']:.3f} | {w['entropy']:.3f} | {w['flat_groups']:.3f} | {w['clip_fraction']:.3f} | "
                         f"{w['kl_factor']:.2f} / {w['kl_factor_max']:.2f} | {w['grad_norm']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[], help="NAME=FOLDER")
    parser.add_argument("--screens", type=int, default=64, help="training screens per set (SFT-seen, unseen)")
    parser.add_argument("--heldout", type=int, default=64,
                        help="held-out screens: the first 64 are the benchmark's; more only narrow this diagnosis's error")
    parser.add_argument("--sft-train-size", type=int, default=SFT_TRAIN_SCREENS,
                        help="the warm start's SFT training screens: the unseen set starts after them (8192 for tiny-qwen2.5-vl-gui-8192)")
    parser.add_argument("--k", type=int, default=8, help="samples per screen; 0: greedy only")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics", nargs="*", default=[], help="LABEL=metrics.jsonl of runs to summarise")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)

    from mmpost.config import load_config
    from mmpost.tasks.gui_click.task import GuiClickTask

    config = load_config(REPO / "recipes" / "guirlvg.yaml", CPU_OVERRIDES + args.overrides)
    task = GuiClickTask()
    n = args.screens
    splits = {"train, SFT-seen": task.load("train", size=n),
              "train, unseen": task.load("train", size=args.sft_train_size + n)[args.sft_train_size:],
              "held-out": task.load("heldout", size=args.heldout)}
    report: dict = {"k": args.k, "temperature": args.temperature,
                    "weights": {spec["name"]: spec.get("weight", 1.0) for spec in config.rewards}, "models": {}, "runs": {}}
    for item in args.models:
        name, folder = item.split("=", 1)
        result = evaluate(config, folder, splits, k=args.k, temperature=args.temperature, seed=args.seed)
        report["models"][name] = {"folder": folder, **result}
        print(name, json.dumps({s: {**r["greedy"], **{key: r[key] for key in ("sampled_in_box", "entropy_digit_tokens",
                                    "entropy_other_tokens", "within_group_variance_share") if key in r}}
                                for s, r in result.items()}), flush=True)
    names = list(report["models"])
    for name in names[1:]:
        report["models"][name]["flips"] = {
            split: greedy_flips(report["models"][names[0]][split]["records"], report["models"][name][split]["records"])
            for split in splits}
    for item in args.metrics:
        label, path = item.split("=", 1)
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        report["runs"][label] = summarise_metrics(rows, args.window, config.algorithm.kl_coef)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
