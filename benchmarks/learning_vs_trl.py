"""The control that separates bugs from scale: mmpost's `grpo` and `sft` recipes against TRL's GRPOTrainer and
SFTTrainer, from the same warm start, on the same task rows (the same prompt token ids and pixels: checked), with the
same settings, 3 seeds each; both evaluated by the same code (greedy held-out accuracy, pass@k).

    python benchmarks/learning_vs_trl.py                       # grpo and sft, seeds 0 1 2 (needs `pip install -e .[bench]`)
    python benchmarks/learning_vs_trl.py --parts grpo --seeds 0 --steps 20

Settings come from the recipes (recipes/grpo.yaml, recipes/sft.yaml) and are mapped one to one onto TRL 1.16:

| mmpost (recipe) | TRL |
|---|---|
| fp32, no gradient checkpointing | `bf16=False`, `gradient_checkpointing=False` (TRL's defaults are bf16 and checkpointing) |
| `optim.lr`, constant schedule, AdamW (0.9, 0.999, 1e-8), no weight decay, `max_grad_norm` 1 | the same (`lr_scheduler_type="constant"`) |
| `rollout.num_generations` G, `data.prompts_per_step` P, `rollout.temperature`, `rollout.max_new_tokens` | `num_generations`, `per_device_train_batch_size` = P·G, `temperature`, `max_completion_length` |
| `algorithm.kl_coef` (0: no reference) | `beta` |
| `ppo_clip`, 1 epoch, 1 mini-batch (ratio 1, on-policy), `token_mean` | `num_iterations=1`, `epsilon=0.2`, `loss_type="bnpo"` (the token mean of the batch) |
| `grpo` advantage, group std (eps 1e-6) | `scale_rewards="group"` (eps 1e-4) |
| rewards `shapes_accuracy` (1.0) + `answer_tag_format` (0.5) | the same functions, `reward_weights=[1.0, 0.5]` |
| media/control tokens suppressed in sampling and in the log-probs | `suppress_tokens` in sampling only (TRL's log-probs use the full softmax) |
| each prompt encoded alone (no padding) | the processor loaded with `padding_side="left"`, as `GRPOTrainer` loads it when it is given none |
| SFT: cross-entropy on the target + `<|im_end|>`, token mean, P rows per step | `SFTTrainer` on prompt-completion rows (prompt = the same templated text + image, completion = target + `<|im_end|>`), `completion_only_loss`, batch P |

Differences that remain and are named: the data order (each trainer's own seeded sampler), the advantage eps, and
TRL's log-probs over the unmasked vocabulary.

The padding side matters (trl#5785): GRPOTrainer left-pads the prompt ids itself but takes the loss forward's
`mm_token_type_ids` from the processor, so a right-padding processor (the transformers default, and what this script
passed until the fix) misplaces the image in Qwen2.5-VL's M-RoPE positions on every left-padded row of the loss
forward, while generation is right. Measured on one step-1 batch from the shapes warm start: 48 of 64 rows affected,
their log-probs off by 0.49 nats on average (8.4 at most), the sampled tokens' NLL 0.598 under the loss forward
against 0.277 under the right one. `check_training_forward_alignment` now refuses such a processor. Writes benchmarks/results/learning_vs_trl.{md,json} and
learning_vs_trl_{grpo,sft}.png (both reward curves, mean and per-seed band; held-out before/after).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import (REPO, RESULTS, Job, Row, diagnosis_table, gain_statistics, kinds_table,  # noqa: E402
                             markdown_table, plot_row, run_jobs)

WARM_START = ("tiny-qwen2.5-vl-shapes", "artifacts/tiny-qwen2.5-vl-shapes")
SHARED = ["data.task_args={heldout_size: 256}"]


def recipe_config(recipe: str, overrides: list[str]):
    from mmpost.config import load_config

    return load_config(REPO / "recipes" / f"{recipe}.yaml", [f"model.path={REPO / WARM_START[1]}", f"model.zoo={WARM_START[0]}",
                                                             *SHARED, *overrides])


def evaluate_folder(folder: Path, recipe: str, seed: int) -> dict:
    """Greedy held-out accuracy and the held-out sampling diagnostics of a model folder, by mmpost's own evaluation
    (the same rows, prompts, decoding and seeds as a `mmpost train` run of `recipe`)."""
    from mmpost.builder import build_run
    from mmpost.diagnostics import RunDiagnostics
    from mmpost.trainer import decode_samples, heldout_accuracy

    config = recipe_config(recipe, [f"train.seed={seed}", "train.threads=1", "train.output_dir=/tmp/mmpost-trl-eval"])
    config.model.path, config.model.zoo = str(folder), None
    run = build_run(config)
    run.diagnostics = RunDiagnostics(run)
    return {"accuracy": heldout_accuracy(run),
            **run.diagnostics.heldout_sampling(run, lambda rows: decode_samples(run, rows)[0])}


def task_rows(config) -> list[dict]:
    from mmpost.builder import build_task

    return list(build_task(config).load("train"))


def check_same_inputs(trainer, config, rows: list[dict]) -> None:
    """TRL's tokenisation of a prompt must equal mmpost's: the same token ids and the same pixels."""
    import torch

    from mmpost.builder import build_modality, build_task
    from mmpost.model import load_processor

    task = build_task(config)
    modality = build_modality(config, task)
    processor = load_processor(config.model.path)
    for row in rows[:4]:
        mine = modality.encode_prompt(processor, task.prompt(row), dict(row))
        prompt = [{"role": "user", "content": [{"type": "image", "image": row["images"][0]},
                                               {"type": "text", "text": task.prompt(row)[0]["content"][1]["text"]}]}]
        ids, _, fields = trainer._tokenize_prompts([prompt])
        if list(ids[0]) != mine.input_ids.tolist():
            raise AssertionError(f"TRL and mmpost tokenise {row['id']} differently:\n{ids[0]}\n{mine.input_ids.tolist()}")
        if not torch.equal(fields["pixel_values"], mine.media["pixel_values"]):
            raise AssertionError(f"TRL and mmpost give {row['id']} different pixels")


def check_training_forward_alignment(trainer, task, rows: list[dict]) -> None:
    """TRL's loss forward takes `mm_token_type_ids` from the processor on the left-padded prompts it generated from:
    on prompts of different lengths the processor's image marks must sit where the image tokens are (trl#5785)."""
    import torch

    processor = trainer.processing_class
    by_length = sorted(rows[:12], key=lambda row: len(task.prompt(row)[0]["content"][1]["text"]))
    pair = [by_length[0], by_length[-1]]
    texts = [processor.apply_chat_template(task.prompt(row), add_generation_prompt=True, tokenize=False) for row in pair]
    encoded = processor(images=[[row["images"][0]] for row in pair], text=texts, padding=True, return_tensors="pt")
    if torch.equal(encoded["attention_mask"][0], encoded["attention_mask"][1]):
        raise AssertionError("check_training_forward_alignment needs two prompts of different lengths")
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    width = encoded["input_ids"].shape[1]
    for ids, mask, marks in zip(encoded["input_ids"], encoded["attention_mask"], encoded["mm_token_type_ids"]):
        unpadded = ids[mask.bool()]
        left_padded = torch.cat([unpadded.new_zeros(width - len(unpadded)), unpadded])  # as GRPOTrainer pads prompt ids
        if not torch.equal(marks.bool(), left_padded == image_token):
            raise AssertionError("TRL's loss forward would misplace the image tokens of left-padded prompts (its "
                                 "mm_token_type_ids come from the processor): load the processor with "
                                 "padding_side='left' (trl#5785)")


def check_same_sft_rows(trainer, config, rows: list[dict], dataset) -> None:
    """TRL's SFT batch must hold mmpost's rows: prompt ids + target ids + <|im_end|>, loss on the completion only."""
    import torch

    from mmpost.builder import build_modality, build_task
    from mmpost.model import load_processor

    task = build_task(config)
    modality = build_modality(config, task)
    processor = load_processor(config.model.path)
    for index in range(4):
        row = rows[index]
        prompt = modality.encode_prompt(processor, task.prompt(row), dict(row)).input_ids.tolist()
        target = processor.tokenizer(task.target(row), add_special_tokens=False)["input_ids"]
        target.append(processor.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        batch = trainer.data_collator([dict(dataset[index])])
        ids = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
        labelled = batch["labels"][0][batch["labels"][0] != -100].tolist()
        if ids != prompt + target or labelled != target:
            raise AssertionError(f"TRL's SFT row {row['id']} differs from mmpost's:\n{ids}\n{prompt + target}\n{labelled}")
        if not torch.equal(batch["pixel_values"], modality.encode_prompt(processor, task.prompt(row), dict(row)).media["pixel_values"]):
            raise AssertionError(f"TRL and mmpost give {row['id']} different pixels")


def shapes_rewards(config):
    """The recipe's rewards as TRL reward functions (the same mmpost functions on the same row fields)."""
    from mmpost.builder import build_task, reward_specs
    from mmpost.registry import REWARDS

    specs = reward_specs(config, build_task(config))
    functions = []
    for spec in specs:
        function = REWARDS.get(spec.name)

        def reward(completions, answer, kind, _function=function, _args=dict(spec.args), **_):
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            return _function(texts, [{"answer": a, "kind": k} for a, k in zip(answer, kind)], **_args)

        reward.__name__ = spec.name
        functions.append(reward)
    return functions, [float(s.weight) for s in specs]


def train_trl(part: str, seed: int, out: Path, steps: int) -> None:
    """One TRL run (a child process): train, save, evaluate with mmpost's evaluation, write summary + metrics."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback

    torch.set_num_threads(1)
    config = recipe_config(part, [f"train.seed={seed}", f"train.steps={steps}"])
    from mmpost.model import ensure_model_folder

    ensure_model_folder(config.model)
    out.mkdir(parents=True, exist_ok=True)
    rows = task_rows(config)
    # GRPOTrainer's own choice when it loads the processor itself (its loss forward needs left padding; module docstring).
    processor = AutoProcessor.from_pretrained(config.model.path, **({"padding_side": "left", "truncation_side": "left"}
                                                                    if part == "grpo" else {}))
    model = AutoModelForImageTextToText.from_pretrained(config.model.path, dtype=torch.float32)
    from mmpost.builder import build_task
    from mmpost.policy import _media_and_control_ids

    task = build_task(config)
    tokenizer = processor.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    suppressed = _media_and_control_ids(tokenizer, [eos])
    records: list[dict] = []

    class Log(TrainerCallback):
        def __init__(self):
            self.started = time.perf_counter()

        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_log(self, _args, state, _control, logs=None, **__):
            if not logs or "loss" not in logs and "reward" not in logs:
                return
            record = {"step": state.global_step, "perf/step_s": time.perf_counter() - self.started}
            if "reward" in logs:
                record["reward/mean"] = logs["reward"]
                for key, value in logs.items():
                    if key.startswith("rewards/") and key.endswith("/mean"):
                        record[f"reward/{key.split('/')[1]}"] = value
                if "entropy" in logs:
                    record["diag/entropy"] = logs["entropy"]
                if "clip_ratio/region_mean" in logs:
                    record["loss/clip_fraction"] = logs["clip_ratio/region_mean"]
            if "loss" in logs:
                record["loss/total"] = logs["loss"]
            records.append(record)

    common = dict(output_dir=str(out / "trainer"), use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
                  max_steps=steps, learning_rate=config.optim.lr, lr_scheduler_type="constant", warmup_steps=0,
                  weight_decay=config.optim.weight_decay, adam_beta1=config.optim.betas[0], adam_beta2=config.optim.betas[1],
                  adam_epsilon=config.optim.eps, max_grad_norm=config.optim.max_grad_norm, seed=seed, data_seed=seed,
                  bf16=False, fp16=False, gradient_checkpointing=False, gradient_accumulation_steps=1,
                  dataloader_num_workers=0, disable_tqdm=True)
    started = time.perf_counter()
    if part == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        r, a = config.rollout, config.algorithm
        assert a.ppo_epochs == 1 and a.mini_batches == 1 and a.aggregation == "token_mean" and a.policy_loss == "ppo_clip"
        # TRL puts the `image` column into the prompt's {"type": "image"} placeholder.
        dataset = Dataset.from_list([{"prompt": task.prompt(row), "image": row["images"][0], "answer": row["answer"],
                                      "kind": row["kind"]} for row in rows])
        functions, weights = shapes_rewards(config)
        args = GRPOConfig(**common, per_device_train_batch_size=config.data.prompts_per_step * r.num_generations,
                          num_generations=r.num_generations, max_completion_length=r.max_new_tokens, temperature=r.temperature,
                          top_p=r.top_p, top_k=r.top_k or 0, beta=a.kl_coef, num_iterations=1,
                          epsilon=a.policy_loss_args.get("clip_low", 0.2), loss_type="bnpo", scale_rewards="group",
                          reward_weights=weights, generation_kwargs={"suppress_tokens": suppressed}, log_completions=False)
        trainer = GRPOTrainer(model=model, reward_funcs=functions, args=args, train_dataset=dataset,
                              processing_class=processor, callbacks=[Log()])
        check_same_inputs(trainer, config, rows)
        check_training_forward_alignment(trainer, task, rows)
    else:
        from trl import SFTConfig, SFTTrainer

        def text_prompt(row):
            return processor.apply_chat_template(task.prompt(row), add_generation_prompt=True, tokenize=False)

        dataset = Dataset.from_list([{"prompt": text_prompt(row), "completion": task.target(row) + "<|im_end|>",
                                      "image": row["images"][0]} for row in rows])
        args = SFTConfig(**common, per_device_train_batch_size=config.data.prompts_per_step, completion_only_loss=True,
                         max_length=None, dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor, callbacks=[Log()])
        check_same_sft_rows(trainer, config, rows, dataset)
    trainer.train()
    seconds = time.perf_counter() - started
    final = out / "model"
    trainer.save_model(str(final))
    processor.save_pretrained(str(final))
    # The warm start's numbers are the mmpost run's of the same seed (benchmarks/learning_job.py: same key), computed
    # once for both sides.
    from learning_job import before_numbers
    from mmpost.builder import build_task

    eval_config = recipe_config(part, [f"train.seed={seed}", "train.threads=1", "train.output_dir=/tmp/mmpost-trl-eval"])
    before = before_numbers(eval_config, build_task(eval_config))[0]
    before = {"accuracy": before.pop("heldout_accuracy"), **{k[len("heldout_"):]: v for k, v in before.items()}}
    after = evaluate_folder(final, part, seed)
    summary = {"steps": steps, "seconds": seconds, "seconds_per_step": seconds / steps,
               "heldout_accuracy_before": before.pop("accuracy"), "heldout_accuracy_after": after.pop("accuracy")}
    summary.update({f"heldout_{k}_before": v for k, v in before.items()})
    summary.update({f"heldout_{k}_after": v for k, v in after.items()})
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["grpo", "sft"], choices=["grpo", "sft"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's train.steps")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", default="runs/benchmark-learning")
    parser.add_argument("--child", choices=["grpo", "sft"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)  # this script's digest: part of a TRL run's reuse fingerprint
    args = parser.parse_args(argv)
    if args.child:
        train_trl(args.child, args.seed, Path(args.child_out), args.steps)
        return 0

    from mmpost.model import ensure_model_folder

    ensure_model_folder(recipe_config("grpo", []).model)  # the shared warm start, built once (cached)
    out = REPO / args.out
    jobs, rows, texts = [], [], []
    steps = {part: args.steps or recipe_config(part, []).train.steps for part in args.parts}
    # A TRL run is defined by this script (its settings and checks), so a finished one is reused only while the
    # script is unchanged (run_jobs fingerprints the command).
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    for part in args.parts:
        for seed in args.seeds:
            # The mmpost runs are the learning benchmark's own (same folder and overrides): run once, read by both.
            # The recipes already name WARM_START and SHARED's held-out size; no overrides keeps the command (and so
            # the reuse fingerprint) identical to benchmarks/learning.py's.
            jobs.append(Job(key=("mmpost", part, seed), recipe=part, seed=seed, steps=args.steps,
                            output_dir=out / "shapes" / part / f"seed{seed}", overrides=[], reuse_before=True))
            trl_dir = out / "trl" / part / f"seed{seed}"
            jobs.append(Job(key=("trl", part, seed), recipe=part, seed=seed, steps=steps[part], output_dir=trl_dir, overrides=[],
                            command=[sys.executable, str(Path(__file__).resolve()), "--child", part, "--seed", str(seed),
                                     "--steps", str(steps[part]), "--child-out", str(trl_dir), "--code", code]))
    runs = run_jobs(jobs, parallel=args.parallel)
    payload = {}
    for part in args.parts:
        mine = Row(f"mmpost {part}", f"vs_trl_{part}", [runs[("mmpost", part, s)] for s in args.seeds], task="shapes",
                   warm_start=WARM_START[0], steps=steps[part])
        theirs = Row(f"TRL {'GRPOTrainer' if part == 'grpo' else 'SFTTrainer'}", f"vs_trl_{part}_trl",
                     [runs[("trl", part, s)] for s in args.seeds], task="shapes", warm_start=WARM_START[0], steps=steps[part])
        curve = "reward/mean" if part == "grpo" else "loss/total"
        plot_row(mine, RESULTS / f"learning_vs_trl_{part}.png", curve_key=curve, compare=[theirs])
        comparison = difference_statistics(mine, theirs, curve)
        payload[part] = {"mmpost": mine.statistics(), "trl": theirs.statistics(), "comparison": comparison}
        rows += [mine, theirs]
        texts.append(f"**{part}**: after − after (mmpost − TRL) {comparison['after_difference']:+.3f} "
                     f"(SE {comparison['after_difference_se']:.3f}); {curve} over the last 20 steps mmpost "
                     f"{comparison['curve_last20_mmpost']:.3f} vs TRL {comparison['curve_last20_trl']:.3f} "
                     f"(difference {comparison['curve_last20_difference']:+.3f}, SE {comparison['curve_last20_se']:.3f}).")
    text = (markdown_table(rows, title="mmpost against TRL, same warm start, rows, settings and evaluation") + "\n\n"
            + "\n\n".join(texts) + "\n\nDiagnostics (mean over seeds; TRL logs entropy and clip fraction, not KL to "
            "start or flat groups):\n\n" + diagnosis_table(rows) + "\n\nBy question kind (held-out, greedy):\n\n" + kinds_table(rows))
    print(text)
    (RESULTS / "learning_vs_trl.md").write_text(text + "\n")
    (RESULTS / "learning_vs_trl.json").write_text(json.dumps(payload, indent=1, default=float))
    return 0


def difference_statistics(mine: Row, theirs: Row, curve: str) -> dict:
    """Are the two indistinguishable? Differences of the seed means with the SE of a difference of two means
    (sqrt(s1²/n1 + s2²/n2)), for the held-out accuracy after training and the last 20 steps of the curve."""
    import math
    import statistics

    def last20(row):
        return [statistics.mean([v for v in r.curves.get(curve, [])[-20:] if v is not None]) for r in row.runs]

    def diff(a, b):
        se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) if len(a) > 1 and len(b) > 1 else float("nan")
        return statistics.mean(a) - statistics.mean(b), se

    after, after_se = diff([r.after for r in mine.runs], [r.after for r in theirs.runs])
    curve_mine, curve_theirs = last20(mine), last20(theirs)
    curve_diff, curve_se = diff(curve_mine, curve_theirs)
    return {"after_difference": after, "after_difference_se": after_se, "curve_last20_mmpost": statistics.mean(curve_mine),
            "curve_last20_trl": statistics.mean(curve_theirs), "curve_last20_difference": curve_diff, "curve_last20_se": curve_se,
            "gain_mmpost": gain_statistics([r.before for r in mine.runs], [r.after for r in mine.runs])["gain_mean"],
            "gain_trl": gain_statistics([r.before for r in theirs.runs], [r.after for r in theirs.runs])["gain_mean"]}


if __name__ == "__main__":
    sys.exit(main())
