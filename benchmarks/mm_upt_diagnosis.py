"""MM-UPT on digit_sum, diagnosed: what the vote reward can and cannot teach a given model (labels used for the
diagnosis only, never for a reward).

    python benchmarks/mm_upt_diagnosis.py --models warm=artifacts/tiny-qwen2.5-vl-mmupt \
        after=runs/benchmark-learning/mm_upt_lr1e-5/seed0/checkpoints/step_60/model --out runs/s5/diag.json

For each model, on the training prompts (the rows MM-UPT trains on, whose sums it never reads; by default the rows the
warm-up SFT read), optionally on validation prompts (`--validation N`: train-part images the warm start never saw, for
choosing settings without the held-out split; `--heldout 0` leaves the held-out split out) and on the held-out ones:
greedy accuracy, k samples per prompt at the training temperature (sampled accuracy, maj@k, the share of prompts
whose k answers disagree, the vote's accuracy there), the vote's margin over greedy (the most a vote reward can move
greedy towards), the answers' marginal over all prompts (a prompt-independent drift shows as the marginal narrowing),
and which digit readings are wrong (the worked answer "a + b = \\boxed{c}" names what the model read). With two or
more models, the first is the reference: greedy flips right → wrong and wrong → right, split by whether the
reference's k answers were contested or unanimous on that prompt.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO  # noqa: E402

SPLITS = ("train", "validation", "heldout")
CPU_OVERRIDES = ["data.prompts_per_step=8", "algorithm.mini_batches=1", "train.progress=false"]
# 16 tokens hold "a + b + c = \\boxed{s}" with any 1..5 digits (14 tokens); 4 numbers need 16 with a one-digit sum and
# 17 with a two-digit one, which 16 tokens cut before the box closes (the answer is then "None"): pass 24 there.
MAX_NEW_TOKENS = 16


def digits_read(text: str) -> tuple[int, ...] | None:
    """The numbers the worked answer says it read ("2 + 3 = ..." -> (2, 3), "1 + 3 + 2 = ..." -> (1, 3, 2)); None
    when it has no such form (the same parser `digit_sum_consistent_accuracy` pays by)."""
    from mmpost.tasks.mm_upt.rewards import worked_reading

    return worked_reading(text)


def prompt_record(numbers, truth: str, greedy_text: str, sampled_texts: list[str], demonstration=None) -> dict:
    """One prompt's answers. `demonstration`: the numbers in the order the row's SFT demonstration reads them (rows of
    a shuffled reading order), to measure whether the model recites that demonstration."""
    from mmpost.tasks.mm_upt.rewards import vote_answer

    answers = [vote_answer(t) for t in sampled_texts]
    winner = Counter(answers).most_common(1)[0][0]
    return {"numbers": list(numbers), "truth": truth, "greedy": vote_answer(greedy_text),
            "greedy_read": digits_read(greedy_text), "answers": answers, "vote": winner,
            "reads": [digits_read(t) for t in sampled_texts],
            "demonstration": None if demonstration is None else list(demonstration)}


def paired_mean_se(diffs: list[float]) -> tuple[float, float]:
    """Mean of per-prompt differences and its standard error, sd(d)/√n (sample sd; 0 for one prompt)."""
    n = len(diffs)
    mean = sum(diffs) / n
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return mean, (variance / n) ** 0.5


def margin_and_se(records: list[dict]) -> tuple[float, float]:
    """maj@k − greedy and its standard error over prompts (paired: d_i = vote right_i − greedy right_i, SE = sd(d)/√n)."""
    return paired_mean_se([(r["vote"] == r["truth"]) - (r["greedy"] == r["truth"]) for r in records])


def multiset_readings(numbers, read) -> Counter:
    """true->read pairs of one reading compared as multisets: digits read right as d->d, a missed digit and an extra
    one paired in sorted order as a misread."""
    truth_counts, read_counts = Counter(numbers), Counter(read)
    pairs: Counter = Counter({f"{d}->{d}": c for d, c in (truth_counts & read_counts).items()})
    for true, seen in zip(sorted((truth_counts - read_counts).elements()), sorted((read_counts - truth_counts).elements())):
        pairs[f"{true}->{seen}"] += 1
    return pairs


def vote_push_on_readings(records: list[dict], eps: float = 1e-6) -> dict:
    """Where the vote reward's first update points on the shared digit readings: over the contested prompts, each sampled
    path's GRPO advantage (reward 1 if its answer is the group's vote, else 0; (r - mean) / (std + eps), as the recipe's
    `grpo` advantage with scale 'group') summed per true->read pair of its reading (multisets). A positive "3->3" and a
    negative "3->2" mean the first steps push towards reading the 3 right."""
    push: Counter = Counter()
    for r in records:
        if len(set(r["answers"])) == 1:
            continue
        rewards = [float(a == r["vote"]) for a in r["answers"]]
        mean = sum(rewards) / len(rewards)
        std = (sum((x - mean) ** 2 for x in rewards) / len(rewards)) ** 0.5
        for reward, read in zip(rewards, r["reads"]):
            if read is None or len(read) != len(r["numbers"]):
                continue
            for pair, count in multiset_readings(r["numbers"], read).items():
                push[pair] += count * (reward - mean) / (std + eps)
    return dict(sorted(push.items()))


def summarise(records: list[dict], *, positional: bool = True) -> dict:
    """The numbers above for one model on one set of prompts. `positional=False` (demonstrations that read the numbers
    in a shuffled order) compares readings as multisets: a reading's place in the answer is not its place in the image."""
    n = len(records)
    greedy = sum(r["greedy"] == r["truth"] for r in records) / n
    sampled = sum(a == r["truth"] for r in records for a in r["answers"]) / sum(len(r["answers"]) for r in records)
    vote = sum(r["vote"] == r["truth"] for r in records) / n
    margin, margin_se = margin_and_se(records)
    # How a sampled path goes wrong: it reads the wrong number of numbers (a skip or a duplicate), the right number of
    # numbers but not the image's (a misread), or writes a sum that is not the sum of what it read.
    paths = [(r, read, answer) for r in records for read, answer in zip(r["reads"], r["answers"])]
    wrong_count = sum(read is not None and len(read) != len(r["numbers"]) for r, read, _ in paths)
    misread_multiset = sum(read is not None and len(read) == len(r["numbers"]) and sorted(read) != sorted(r["numbers"])
                           for r, read, _ in paths)
    bad_sum = sum(read is not None and str(sum(read)) != answer for _, read, answer in paths)
    contested = [r for r in records if len(set(r["answers"])) > 1]
    truth_marginal = Counter(r["truth"] for r in records)
    answer_marginal = Counter(a for r in records for a in r["answers"])
    total = sum(answer_marginal.values())
    # Digit readings (greedy): which position is misread, and the confusion true -> read over both positions.
    misread = [0] * max(2, max(len(r["numbers"]) for r in records))
    confusion: Counter = Counter()
    inconsistent = 0
    for r in records:
        read = r["greedy_read"]
        if read is None or len(read) != len(r["numbers"]):
            continue
        inconsistent += str(sum(read)) != r["greedy"]
        if not positional:
            confusion.update(multiset_readings(r["numbers"], read))  # a reading's place is not its place in the image
            continue
        for position, (true, seen) in enumerate(zip(r["numbers"], read)):
            misread[position] += true != seen
            confusion[f"{true}->{seen}"] += 1
    # The vote per reading: for each true digit, on the prompts where the k samples disagree about it, how often the
    # majority reading is right. A vote reward's gradient on the shared "which digit is this" features follows these
    # contested readings, so a digit whose contested majority is mostly wrong is pushed towards the wrong reading.
    # Which digit the vote casts on those contested readings, whatever the truth: in a model that cannot yet tell two
    # digits apart the update moves a shared "2 or 3" reading, pushed one way by the groups voting "2" and the other
    # by those voting "3", right or wrong.
    reading_votes: dict[str, list[int]] = {}
    voted_for: Counter = Counter()
    for r in records if positional else []:
        for position, true in enumerate(r["numbers"]):
            seen = [read[position] for read in r["reads"] if read is not None and len(read) == len(r["numbers"])]
            if len(set(seen)) > 1:
                key = f"{true} at {position + 1}"  # the digit, and which number in the image it is
                majority = Counter(seen).most_common(1)[0][0]
                right, count = reading_votes.setdefault(key, [0, 0])
                reading_votes[key] = [right + (majority == true), count + 1]
                voted_for[str(majority)] += 1
    mode, _ = answer_marginal.most_common(1)[0]
    return {**recital(records),
        "prompts": n, "greedy_accuracy": greedy, "sampled_accuracy": sampled, "majority_accuracy": vote,
        "vote_margin": margin, "vote_margin_se": margin_se, "contested_fraction": len(contested) / n,
        "contested_vote_accuracy": (sum(r["vote"] == r["truth"] for r in contested) / len(contested)) if contested else None,
        "contested_greedy_accuracy": (sum(r["greedy"] == r["truth"] for r in contested) / len(contested)) if contested else None,
        "unanimous_vote_accuracy": (sum(r["vote"] == r["truth"] for r in records if r not in contested)
                                    / max(1, n - len(contested))),
        "pass_at_k": sum(r["truth"] in r["answers"] for r in records) / n,
        "truth_marginal": {k: v / n for k, v in sorted(truth_marginal.items())},
        "answer_marginal": {k: v / total for k, v in sorted(answer_marginal.items())},
        "greedy_marginal": {k: v / n for k, v in sorted(Counter(r["greedy"] for r in records).items())},
        "mode_answer": mode, "mode_share": answer_marginal[mode] / total,
        "greedy_first_digit_misread": misread[0] / n, "greedy_second_digit_misread": misread[1] / n,
        "greedy_misread_by_position": [m / n for m in misread] if positional else None,
        "greedy_reading_wrong": sum(r["greedy_read"] is None or sorted(r["greedy_read"]) != sorted(r["numbers"])
                                    for r in records) / n,
        "greedy_sum_inconsistent": inconsistent / n,
        "sampled_wrong_count": wrong_count / len(paths), "sampled_misread": misread_multiset / len(paths),
        "sampled_bad_sum": bad_sum / len(paths),
        "digit_confusion": dict(sorted(confusion.items())),
        "contested_reading_vote": {d: {"right": v[0], "contested": v[1], "accuracy": v[0] / v[1]}
                                   for d, v in sorted(reading_votes.items())},
        "contested_readings_voted_for": dict(sorted(voted_for.items())),
        "vote_push_on_readings": vote_push_on_readings(records),
    }


def recital(records: list[dict]) -> dict:
    """How often greedy, and the sampled paths, read the numbers in exactly the order of the row's own demonstration
    (rows with one). On rows the warm-up SFT read this is memorisation; on rows it never read the demonstration is a
    random order, so the same share measures chance (1/6 for 3 distinct numbers, more with repeats)."""
    with_demo = [r for r in records if r.get("demonstration") is not None]
    if not with_demo:
        return {"greedy_recites_demonstration": None, "sampled_recite_demonstration": None}
    sampled = [read for r in with_demo for read in r["reads"]]
    return {"greedy_recites_demonstration": sum(r["greedy_read"] == tuple(r["demonstration"]) for r in with_demo) / len(with_demo),
            "sampled_recite_demonstration": sum(read == tuple(r["demonstration"]) for r in with_demo for read in r["reads"])
            / len(sampled)}


def flips(reference: list[dict], other: list[dict]) -> dict:
    """Greedy right -> wrong and wrong -> right from `reference` to `other`, split by the reference's contest, and
    where the right -> wrong ones went (the reference's vote? the answers' global mode?)."""
    out: dict = {}
    for name, keep in (("contested", lambda r: len(set(r["answers"])) > 1), ("unanimous", lambda r: len(set(r["answers"])) == 1)):
        pairs = [(a, b) for a, b in zip(reference, other) if keep(a)]
        out[name] = {"prompts": len(pairs),
                     "right_to_wrong": sum(a["greedy"] == a["truth"] and b["greedy"] != b["truth"] for a, b in pairs),
                     "wrong_to_right": sum(a["greedy"] != a["truth"] and b["greedy"] == b["truth"] for a, b in pairs),
                     "reference_vote_right": sum(a["vote"] == a["truth"] for a, _ in pairs)}
    lost = [(a, b) for a, b in zip(reference, other) if a["greedy"] == a["truth"] and b["greedy"] != b["truth"]]
    out["lost_to_answer"] = dict(Counter(b["greedy"] for _, b in lost).most_common())
    out["lost_truth"] = dict(Counter(a["truth"] for a, _ in lost).most_common())
    out["lost_where_reference_vote_was_wrong"] = sum(a["vote"] != a["truth"] for a, _ in lost)
    out["lost_to_reference_vote"] = sum(b["greedy"] == a["vote"] for a, b in lost)
    return out


def markdown(report: dict) -> str:
    """The report as tables: per model and split the vote's numbers, the contested readings' vote, the answers'
    marginal, and the greedy flips from the first model."""
    lines = [f"k = {report['k']} samples per prompt at T {report['temperature']}; task options {report['task_args'] or 'default'}.",
             "", "| model | split | greedy | sampled | maj@k | maj@k − greedy (SE) | contested | vote right on contested | "
             "pass@k | greedy misread by position | greedy reading wrong | sampled paths: wrong count / misread / bad sum | "
             "greedy / sampled recite the row's demonstration |", "|---" * 13 + "|"]
    models = report["models"]
    for name, m in models.items():
        for split in (split for split in SPLITS if split in m):
            s = m[split]
            lines.append(f"| {name} | {split} | {s['greedy_accuracy']:.3f} | {s['sampled_accuracy']:.3f} | "
                         f"{s['majority_accuracy']:.3f} | {s['vote_margin']:+.3f} ({s['vote_margin_se']:.3f}) | {s['contested_fraction']:.3f} | "
                         f"{_maybe(s['contested_vote_accuracy'])} | {s['pass_at_k']:.3f} | {_positions(s)} | "
                         f"{s['greedy_reading_wrong']:.3f} | {s['sampled_wrong_count']:.3f} / {s['sampled_misread']:.3f}"
                         f" / {s['sampled_bad_sum']:.3f} | {_maybe(s.get('greedy_recites_demonstration'))} / "
                         f"{_maybe(s.get('sampled_recite_demonstration'))} |")
    if _reading_keys(models):  # none when the readings are compared as multisets (a shuffled reading order)
        lines += ["", "The vote on contested readings (training prompts): for each true digit and its place in the image, on "
                  "the prompts whose k samples read it differently, how often the majority reading is right (right / "
                  "contested).", "", "| model | " + " | ".join(f"'{key}'" for key in _reading_keys(models))
                  + " | all | the vote reads |", "|---" * (len(_reading_keys(models)) + 3) + "|"]
    for name, m in models.items() if _reading_keys(models) else ():
        votes = m["train"]["contested_reading_vote"]
        cells = [f"{votes[k]['right']}/{votes[k]['contested']}" if k in votes else "-" for k in _reading_keys(models)]
        right, total = sum(v["right"] for v in votes.values()), sum(v["contested"] for v in votes.values())
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {right}/{total} ({right / max(total, 1):.2f}) | "
                     f"{_counts(m['train']['contested_readings_voted_for'])} |")
    lines += ["", "Greedy readings, true → read (training prompts, both numbers), and the sampled answers' marginal:", "",
              "| model | readings | answers' marginal (train) | truth marginal (train) |", "|---|---|---|---|"]
    for name, m in models.items():
        s = m["train"]
        lines.append(f"| {name} | {_counts(s['digit_confusion'])} | {_shares(s['answer_marginal'])} | {_shares(s['truth_marginal'])} |")
    flipped = [(n, m) for n, m in models.items() if any(k.startswith("flips_from_") for k in m)]
    if flipped:
        first = next(iter(models))
        lines += ["", f"Greedy flips from {first}, by whether {first}'s k answers on the prompt were contested or unanimous:",
                  "", "| model | split | contested: right→wrong / wrong→right (of n) | unanimous: right→wrong / wrong→right "
                  "(of n) | lost prompts went to | truth of the lost prompts |", "|---|---|---|---|---|---|"]
        for name, m in flipped:
            for split, f in m[f"flips_from_{first}"].items():
                c, u = f["contested"], f["unanimous"]
                lines.append(f"| {name} | {split} | {c['right_to_wrong']} / {c['wrong_to_right']} (of {c['prompts']}) | "
                             f"{u['right_to_wrong']} / {u['wrong_to_right']} (of {u['prompts']}) | "
                             f"{_counts(f['lost_to_answer'])} | {_counts(f['lost_truth'])} |")
    return "\n".join(lines) + "\n"


def _positions(summary: dict) -> str:
    by_position = summary.get("greedy_misread_by_position")
    return "-" if by_position is None else " / ".join(f"{m:.2f}" for m in by_position)


def _maybe(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _reading_keys(models: dict) -> list[str]:
    return sorted({k for m in models.values() for k in m["train"]["contested_reading_vote"]})


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"


def _shares(shares: dict) -> str:
    return " ".join(f"{k}: {v:.2f}" for k, v in shares.items())


def evaluate(model: str, splits: dict, *, k: int, temperature: float, seed: int, overrides: list[str],
             max_new_tokens: int = MAX_NEW_TOKENS) -> dict:
    import torch

    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.rollout.base import SamplingParams
    from mmpost.trainer import decode_samples

    config = load_config(REPO / "recipes" / "mm_upt.yaml", CPU_OVERRIDES + [f"rollout.max_new_tokens={max_new_tokens}"] + overrides)
    warm = Path(config.model.path)
    run = build_run(config, policy_path=None if Path(model).resolve() == warm.resolve() else model)
    tokenizer = run.policy.vocabulary.tokenizer
    result = {}
    for split, rows in splits.items():
        records = []
        torch.manual_seed(seed)
        for start in range(0, len(rows), 8):
            batch = rows[start : start + 8]
            samples = decode_samples(run, batch)[0]
            prompts = run.policy.encode_prompts(samples)
            greedy = run.backend.generate(prompts, samples, SamplingParams(n=1, greedy=True, max_new_tokens=max_new_tokens))
            sampled = run.backend.generate(prompts, samples, SamplingParams(n=k, temperature=temperature, top_p=0.99,
                                                                            max_new_tokens=max_new_tokens))
            g_texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in greedy.completion_ids]
            s_texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in sampled.completion_ids]
            for i, row in enumerate(batch):
                order = row.get("reading_order")
                records.append(prompt_record(row["numbers"], str(sum(row["numbers"])), g_texts[i], s_texts[i * k : (i + 1) * k],
                                             None if order is None else [row["numbers"][j] for j in order]))
        result[split] = records
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="NAME=FOLDER; the first is the reference")
    parser.add_argument("--train-prompts", type=int, default=128, help="the first N training prompts")
    parser.add_argument("--heldout", type=int, default=128, help="0 leaves the held-out split out")
    parser.add_argument("--validation", type=int, default=0,
                        help="N validation prompts: train-part images at digit_sum's VALIDATION_OFFSET, never seen by the "
                             "warm-up SFT nor by MM-UPT, disjoint from the held-out split")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="24 for 4 numbers (see MAX_NEW_TOKENS)")
    parser.add_argument("--task-args", default="", help="extra digit_sum options as YAML, e.g. '{high: 5}'")
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True, help="JSON: the report and every prompt's answers")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report's tables here")
    args = parser.parse_args(argv)

    import yaml

    from mmpost.tasks.mm_upt.task import VALIDATION_OFFSET, DigitSumTask

    task_args = yaml.safe_load(args.task_args) if args.task_args else {}
    # The same rows the recipe trains on and is scored on; train_labels only adds the labels (same images, same order).
    task = DigitSumTask(train_labels=True, **task_args)
    positional = task.reading_order == "fixed"
    validation = DigitSumTask(train_labels=True, **{**task_args, "train_offset": VALIDATION_OFFSET})
    splits = {"train": list(task.load("train", size=args.train_prompts)),
              "validation": list(validation.load("train", size=args.validation)),
              "heldout": list(task.load("heldout", size=args.heldout))}
    splits = {name: rows for name, rows in splits.items() if rows}
    overrides = list(args.overrides) + ([f"data.task_args={args.task_args}"] if args.task_args else [])
    records, report = {}, {"k": args.k, "temperature": args.temperature, "task_args": task_args,
                           "max_new_tokens": args.max_new_tokens, "models": {}}
    for item in args.models:
        name, folder = item.split("=", 1)
        started = time.process_time()
        records[name] = evaluate(folder, splits, k=args.k, temperature=args.temperature, seed=args.seed, overrides=overrides,
                                 max_new_tokens=args.max_new_tokens)
        report["models"][name] = {"folder": folder, "cpu_seconds": round(time.process_time() - started, 1),
                                  **{split: summarise(r, positional=positional)
                                                         for split, r in records[name].items()}}
        print(name, json.dumps({s: {k: v for k, v in report["models"][name][s].items() if not isinstance(v, dict)}
                                for s in splits}), flush=True)
    names = list(records)
    for name in names[1:]:
        report["models"][name]["flips_from_" + names[0]] = {s: flips(records[names[0]][s], records[name][s]) for s in splits}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"report": report, "records": records}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
