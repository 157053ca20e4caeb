"""Throughput: mmpost GRPO against TRL's GRPOTrainer and against the bare model work, same model, data and settings.

    python benchmarks/throughput.py                       # shape "small", threads 1 and 2, 2 alternating rounds
    python benchmarks/throughput.py --rounds 1 --threads 1 --shapes small large video16
    python benchmarks/throughput.py --shapes large --threads 1 --freeze-vision --layouts padded shared_prefix packed

Each run is a fresh subprocess (so peak RSS and thread settings belong to that run alone), runs
`warmup + measured` optimizer steps and reports the median step time of the measured steps. Runs alternate
(round-robin over implementation x threads, repeated `--rounds` times) so machine noise spreads evenly.

- mmpost: `mmpost.train` with overrides; times from `metrics.jsonl` (`perf/step_s`, `perf/update_s`,
  `rollout/gen_tokens`).
- TRL: `trl.GRPOTrainer` (benchmark-only dependency: `pip install trl==1.16`), step time from a callback
  around each optimizer step, tokens from its logged `completions/mean_length`. Two configurations: `trl_fp32`
  is TRL set up for the same work as mmpost and the naive loop (`bf16=False, gradient_checkpointing=False`: fp32,
  activations kept), the fair peer; `trl` is TRL's defaults, which on CPU mean bf16 autocast and gradient
  checkpointing (slower here). Ratios are reported against both; the README's ratio is the fair one.
- naive: generate + reference forward + policy forward/backward + AdamW written by hand with transformers:
  the floor any trainer pays for this model work.

`--layouts` runs mmpost once per `algorithm.logprob_pass` (padded | packed | shared_prefix); `--freeze-vision`
freezes the vision tower in all three implementations (mmpost: `model.freeze_vision=true`, which also turns on
per-step reuse of vision features); mmpost rows then report `perf/vision_encodes` (encoder calls per step).

Shape `video16` is a 16-frame clip (a square moving across 224x224 frames, the video_motion task's renderer)
given as 16 images, 64 visual tokens each, 1,024 in all: TRL 1.16's GRPOTrainer takes images, not videos, so all
three implementations get the same 16 images (mmpost through the `vqa` task with a 16-image row).

All three use the shapes task's rows and prompts (video16: the clip rows above), a reward equal to mmpost's `exact_match` on the `<answer>`
tag, KL to a frozen reference (beta), and suppress media/control tokens while sampling (a tiny random model
otherwise samples `<|image_pad|>` and the next forward fails). Not a test: it takes minutes.
Writes `benchmarks/results/throughput.{md,json}`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

SETTINGS = {
    "num_generations": 8,
    "prompts_per_step": 2,
    "max_new_tokens": 32,
    "beta": 0.04,
    "lr": 1e-6,
    "temperature": 1.0,
    "warmup_steps": 2,
    "measured_steps": 5,
}
# Shape "small": the tiny model's default pixel budget (112x112 image -> 16 image tokens).
# Shape "large": a 448x448 image with max_pixels raised -> 256 image tokens; completions a fraction of that.
SHAPES = {
    "small": {"image_size": 112, "max_pixels": None, "max_new_tokens": 32},
    "large": {"image_size": 448, "max_pixels": 448 * 448, "max_new_tokens": 64},
    # 16 frames of 224x224 as 16 images: 16 x (224/14)^2 / 4 = 1,024 visual tokens per prompt.
    "video16": {"image_size": 224, "max_pixels": 224 * 224, "max_new_tokens": 64, "frames": 16},
}
IMPLEMENTATIONS = ("mmpost", "trl_fp32", "trl", "naive")
LABELS = {"trl_fp32": "trl (fp32, no checkpointing)", "trl": "trl (defaults: bf16, checkpointing)"}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _rows(shape: dict, count: int, work: Path | None = None) -> tuple[object, list[dict]]:
    """The task (shapes at the shape's image size, or vqa over clip frames) and its first `count` training rows.
    Clip rows carry their frames as PIL images; with `work`, also written as PNGs and a JSONL for mmpost's vqa task."""
    from mmpost.registry import TASKS
    import mmpost.tasks  # noqa: F401  (registers the shapes task)

    if not shape.get("frames"):
        task = TASKS.get("shapes")(image_size=shape["image_size"])
        return task, task.load("train", size=count)
    import random

    from PIL import Image

    from mmpost.tasks.video_motion.task import random_motion, render

    rng = random.Random(0)
    rows = []
    for index in range(count):
        motion = random_motion(rng, size=shape["image_size"], frames=shape["frames"])
        rows.append({"id": f"clip{index}", "images": [Image.fromarray(frame) for frame in render(motion)],
                     "problem": "The images are the frames of a clip. Which way does the square move: left, right, up or down?",
                     "answer": motion.direction})
    task = TASKS.get("vqa")(path=str(work / "clips.jsonl") if work else None)
    if work is not None:
        lines = []
        for row in rows:
            names = []
            for frame_index, frame in enumerate(row["images"]):
                name = f"frames/{row['id']}_{frame_index:02d}.png"
                (work / "frames").mkdir(parents=True, exist_ok=True)
                frame.save(work / name)
                names.append(name)
            lines.append(json.dumps({**row, "images": names}))
        (work / "clips.jsonl").write_text("\n".join(lines) + "\n")
    return task, rows


def _suppressed_ids(tokenizer) -> list[int]:
    from mmpost.policy import _media_and_control_ids

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return _media_and_control_ids(tokenizer, [eos, tokenizer.eos_token_id])


def _total_steps() -> int:
    return SETTINGS["warmup_steps"] + SETTINGS["measured_steps"]


def _prepare_model(model_dir: Path, shape: dict) -> Path:
    """The tiny Qwen2.5-VL, with its processor's pixel budget raised for the large shape."""
    from mmpost.registry import MODEL_ZOO
    import mmpost.modalities  # noqa: F401  (registers the zoo entry)

    if not (model_dir / "config.json").exists():
        options = {"max_pixels": shape["max_pixels"]} if shape["max_pixels"] else {}
        MODEL_ZOO.get("tiny-qwen2.5-vl")(model_dir, **options)
    return model_dir


# -- one run per implementation (in a subprocess) -------------------------------------------------------
def run_mmpost(model_dir: Path, shape: dict, threads: int, work: Path, *, layout: str = "padded",
               freeze_vision: bool = False) -> dict:
    import mmpost
    import mmpost.trainer as trainer

    cpu_s: list[float] = []
    step = trainer.train_step

    def timed_step(*args, **kwargs):  # the CPU seconds of each step, beside its wall time in metrics.jsonl
        start = time.process_time()
        out = step(*args, **kwargs)
        cpu_s.append(time.process_time() - start)
        return out

    trainer.train_step = timed_step

    overrides = {
        "model.path": str(model_dir), "model.zoo": "null", "train.output_dir": str(work / "mmpost"),
        "train.threads": threads, "train.progress": "false", "train.steps": _total_steps(),
        "data.prompts_per_step": SETTINGS["prompts_per_step"], "rollout.num_generations": SETTINGS["num_generations"],
        "rollout.max_new_tokens": shape["max_new_tokens"], "rollout.temperature": SETTINGS["temperature"],
        "algorithm.kl_coef": SETTINGS["beta"], "optim.lr": SETTINGS["lr"], "eval.heldout": "false",
        "data.task_args": (f"{{path: {_rows(shape, 64, work)[0].paths['train']}}}" if shape.get("frames") else
                           f"{{image_size: {shape['image_size']}, train_size: 64, heldout_size: 8}}"),
        **({"data.task": "vqa"} if shape.get("frames") else {}),
        "rewards": "[{name: exact_match, weight: 1.0}]",
        "algorithm.logprob_pass": layout, "model.freeze_vision": str(freeze_vision).lower(),
    }
    if shape["max_pixels"]:
        overrides["data.modality_args"] = f"{{max_pixels: {shape['max_pixels']}}}"
    config = mmpost.load_config(REPO / "recipes" / "grpo.yaml", [f"{k}={v}" for k, v in overrides.items()])
    summary = mmpost.train(config)
    steps = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines() if line.strip()]
    measured = [s for s in steps if s["step"] > SETTINGS["warmup_steps"]]
    return {
        "step_s": [s["perf/step_s"] for s in measured],
        "cpu_s": cpu_s[SETTINGS["warmup_steps"]:],
        "update_s": [s["perf/update_s"] for s in measured],
        "logprob_s": [s["perf/logprob_s"] for s in measured],
        "gen_tokens": [s["rollout/gen_tokens"] for s in measured],
        "vision_encodes": [s["perf/vision_encodes"] for s in measured if "perf/vision_encodes" in s],
    }


def run_trl(model_dir: Path, shape: dict, threads: int, work: Path, *, freeze_vision: bool = False,
            same_work: bool = False, **_) -> dict:
    """TRL's GRPOTrainer; `same_work` sets it up for the work mmpost does (fp32, no gradient checkpointing),
    otherwise TRL's defaults apply (bf16 autocast and gradient checkpointing, also on CPU)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mmpost.rewards.builtin import exact_match

    torch.set_num_threads(threads)
    task, rows = _rows(shape, 64)
    if shape.get("frames"):
        dataset = Dataset.from_list([{"prompt": task.prompt(r), "images": r["images"], "answer": r["answer"]} for r in rows])
    else:
        dataset = Dataset.from_list([{"prompt": task.prompt(r), "image": r["images"][0], "answer": r["answer"]} for r in rows])

    def answer_exact_match(completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return exact_match(texts, [{"answer": a} for a in answer])

    processor = AutoProcessor.from_pretrained(model_dir)
    if shape["max_pixels"]:
        processor.image_processor.max_pixels = shape["max_pixels"]
        processor.image_processor.size["longest_edge"] = shape["max_pixels"]
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    if freeze_vision:
        model.model.visual.requires_grad_(False)
    generations = SETTINGS["num_generations"]
    args = GRPOConfig(
        output_dir=str(work / "trl"), use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
        max_steps=_total_steps(), per_device_train_batch_size=generations * SETTINGS["prompts_per_step"],
        gradient_accumulation_steps=1, num_generations=generations, max_completion_length=shape["max_new_tokens"],
        beta=SETTINGS["beta"], learning_rate=SETTINGS["lr"], temperature=SETTINGS["temperature"],
        lr_scheduler_type="constant", warmup_steps=0, seed=0, dataloader_num_workers=0, disable_tqdm=True,
        generation_kwargs={"suppress_tokens": _suppressed_ids(processor.tokenizer)},
        **({"bf16": False, "gradient_checkpointing": False} if same_work else {}),
    )

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_s, self.cpu_s, self.mean_length, self._start, self._cpu = [], [], [], 0.0, 0.0

        def on_step_begin(self, *_, **__):
            self._start, self._cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, *_, **__):
            self.step_s.append(time.perf_counter() - self._start)
            self.cpu_s.append(time.process_time() - self._cpu)

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "completions/mean_length" in logs:
                self.mean_length.append(logs["completions/mean_length"])

    timer = Timer()
    trainer = GRPOTrainer(model=model, reward_funcs=answer_exact_match, args=args, train_dataset=dataset,
                          processing_class=processor, callbacks=[timer])
    trainer.train()
    warm = SETTINGS["warmup_steps"]
    sequences = generations * SETTINGS["prompts_per_step"]
    return {"step_s": timer.step_s[warm:], "cpu_s": timer.cpu_s[warm:], "update_s": None,
            "gen_tokens": [m * sequences for m in timer.mean_length[warm:]]}


def run_naive(model_dir: Path, shape: dict, threads: int, work: Path, *, freeze_vision: bool = False, **_) -> dict:
    import copy

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmpost.rewards.builtin import exact_match

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    task, rows = _rows(shape, 64)
    processor = AutoProcessor.from_pretrained(model_dir)
    if shape["max_pixels"]:
        processor.image_processor.max_pixels = shape["max_pixels"]
        processor.image_processor.size["longest_edge"] = shape["max_pixels"]
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    if freeze_vision:
        model.model.visual.requires_grad_(False)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=SETTINGS["lr"], weight_decay=0.0)
    suppressed = _suppressed_ids(processor.tokenizer)
    pad = processor.tokenizer.pad_token_id
    G, P, T = SETTINGS["num_generations"], SETTINGS["prompts_per_step"], SETTINGS["temperature"]
    step_s, cpu_s, update_s, gen_tokens, prompt_tokens = [], [], [], [], []

    def token_logprobs(net, ids, attention, media, prompt_len):
        logits = net(input_ids=ids, attention_mask=attention, **media).logits[:, prompt_len - 1 : -1] / T
        return torch.log_softmax(logits.float(), -1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)

    for step in range(_total_steps()):
        start, cpu_start = time.perf_counter(), time.process_time()
        batch_rows = [rows[(step * P + i) % len(rows)] for i in range(P) for _ in range(G)]
        texts = [processor.apply_chat_template(task.prompt(r), add_generation_prompt=True, tokenize=False) for r in batch_rows]
        images = [r["images"] for r in batch_rows] if shape.get("frames") else [r["images"][0] for r in batch_rows]
        inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        media = {"pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]}
        prompt_len = inputs["input_ids"].shape[1]
        model.eval()
        with torch.no_grad():
            sequences = model.generate(**inputs, do_sample=True, temperature=T, top_k=0, top_p=1.0,
                                       max_new_tokens=shape["max_new_tokens"], suppress_tokens=suppressed, pad_token_id=pad)
        completion = sequences[:, prompt_len:]
        ended = torch.cumsum((completion == pad) | (completion == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")), 1)
        mask = ((ended - ((completion == pad) | (completion == processor.tokenizer.convert_tokens_to_ids("<|im_end|>"))).long()) == 0).float()
        answers = processor.tokenizer.batch_decode(completion, skip_special_tokens=True)
        rewards = torch.tensor(exact_match(answers, batch_rows))
        grouped = rewards.view(P, G)
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).flatten()
        attention = torch.cat([inputs["attention_mask"], mask.long()], 1)
        update_start = time.perf_counter()
        with torch.no_grad():
            ref_logprobs = token_logprobs(reference, sequences, attention, media, prompt_len)
        model.train()
        logprobs = token_logprobs(model, sequences, attention, media, prompt_len)
        ratio = torch.exp(logprobs - logprobs.detach())
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1  # k3 estimator (Schulman 2020), as GRPO (Shao et al. 2024, eq. 4)
        per_token = -(ratio * advantages[:, None]) + SETTINGS["beta"] * kl
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        end = time.perf_counter()
        step_s.append(end - start)
        cpu_s.append(time.process_time() - cpu_start)
        update_s.append(end - update_start)
        gen_tokens.append(float(mask.sum()))
        prompt_tokens.append(int(inputs["attention_mask"].sum(1).max()))
    warm = SETTINGS["warmup_steps"]
    return {"step_s": step_s[warm:], "cpu_s": cpu_s[warm:], "update_s": update_s[warm:], "gen_tokens": gen_tokens[warm:],
            "prompt_tokens": max(prompt_tokens)}


def run_trl_fp32(model_dir: Path, shape: dict, threads: int, work: Path, **options) -> dict:
    return run_trl(model_dir, shape, threads, work, same_work=True, **options)


RUNNERS = {"mmpost": run_mmpost, "trl_fp32": run_trl_fp32, "trl": run_trl, "naive": run_naive}


def child(args: argparse.Namespace) -> None:
    """One run; prints one JSON line on stdout (last line)."""
    shape = SHAPES[args.shape]
    with tempfile.TemporaryDirectory(prefix="mmpost-throughput-") as work:
        options = {"freeze_vision": args.freeze_vision}
        if args.impl == "mmpost":
            options["layout"] = args.layout
        raw = RUNNERS[args.impl](Path(args.model_dir), shape, args.child_threads, Path(work), **options)
    raw["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(raw), flush=True)


# -- the driver -------------------------------------------------------------------------------------
def summarise(raw: dict) -> dict:
    step = statistics.median(raw["step_s"])
    tokens = statistics.median(raw["gen_tokens"]) if raw["gen_tokens"] else float("nan")
    return {
        "step_s": step,
        "cpu_s": statistics.median(raw["cpu_s"]) if raw.get("cpu_s") else None,
        "update_s": statistics.median(raw["update_s"]) if raw.get("update_s") else None,
        "gen_tokens_per_step": tokens,
        "tokens_per_s": sum(raw["gen_tokens"]) / sum(raw["step_s"]) if raw["gen_tokens"] else float("nan"),
        "peak_rss_mib": raw["peak_rss_mib"],
        "steps_measured": len(raw["step_s"]),
        "vision_encodes": statistics.median(raw["vision_encodes"]) if raw.get("vision_encodes") else None,
        # mmpost: the share of a step outside generation (reference/old log-prob passes + update), per step, median.
        "non_generation_share": statistics.median((u + l) / t for u, l, t in zip(raw["update_s"], raw["logprob_s"], raw["step_s"]))
        if raw.get("logprob_s") else None,
    }


def launch(impl: str, shape: str, threads: int, model_dir: Path, *, layout: str = "padded",
           freeze_vision: bool = False) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, __file__, "--child", "--impl", impl, "--shape", shape, "--child-threads", str(threads),
               "--model-dir", str(model_dir), "--layout", layout, "--warmup-steps", str(SETTINGS["warmup_steps"]),
               "--measured-steps", str(SETTINGS["measured_steps"])] + (["--freeze-vision"] if freeze_vision else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{impl} run ({shape}, {threads} threads) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def table(results: list[dict]) -> str:
    head = ("| shape | threads | implementation | s/step (wall, median) | CPU s/step (median) | update s | gen tokens/step | "
            "peak RSS MiB | runs | vision encodes/step | update + log-prob share | mmpost / fair TRL (wall; CPU) | "
            "mmpost / TRL defaults (wall; CPU) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in results:
        update = f"{row['update_s']:.3f}" if row["update_s"] is not None else "n/a"
        fair = (f"{row['ratio_vs_trl_fp32']:.2f}; {row['cpu_ratio_vs_trl_fp32']:.2f}"
                if row.get("ratio_vs_trl_fp32") is not None else "")
        defaults = (f"{row['ratio_vs_trl']:.2f}; {row['cpu_ratio_vs_trl']:.2f}" if row.get("ratio_vs_trl") is not None else "")
        cpu = f"{row['cpu_s']:.3f}" if row.get("cpu_s") is not None else ""
        encodes = f"{row['vision_encodes']:.0f}" if row.get("vision_encodes") is not None else ""
        share = f"{row['non_generation_share']:.0%}" if row.get("non_generation_share") is not None else ""
        lines.append(f"| {row['shape']} | {row['threads']} | {LABELS.get(row['impl'], row['impl'])} | {row['step_s']:.3f} | "
                     f"{cpu} | {update} | {row['gen_tokens_per_step']:.0f} | {row['peak_rss_mib']:.0f} | "
                     f"{row['runs']} | {encodes} | {share} | {fair} | {defaults} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["small"], choices=sorted(SHAPES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    parser.add_argument("--rounds", type=int, default=2, help="alternating repetitions of every run")
    parser.add_argument("--layouts", nargs="+", default=["padded"], choices=["padded", "packed", "shared_prefix"],
                        help="mmpost algorithm.logprob_pass values, one mmpost run each")
    parser.add_argument("--freeze-vision", action="store_true", help="freeze the vision tower in every implementation")
    parser.add_argument("--layout", default="padded", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="throughput", help="results file stem under benchmarks/results/")
    parser.add_argument("--warmup-steps", type=int, default=SETTINGS["warmup_steps"])
    parser.add_argument("--measured-steps", type=int, default=SETTINGS["measured_steps"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SETTINGS["warmup_steps"], SETTINGS["measured_steps"] = args.warmup_steps, args.measured_steps
    if args.child:
        child(args)
        return
    settings = {**SETTINGS, "shapes": {s: SHAPES[s] for s in args.shapes}, "threads": args.threads, "rounds": args.rounds,
                "layouts": args.layouts, "freeze_vision": args.freeze_vision}
    settings["load_average_before"] = os.getloadavg()
    print("settings:", json.dumps(settings), flush=True)
    runs: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="mmpost-throughput-models-") as models:
        for shape in args.shapes:
            model_dir = _prepare_model(Path(models) / shape, SHAPES[shape])
            for round_index in range(args.rounds):
                for threads in args.threads:
                    for impl in args.impls:
                        for layout in (args.layouts if impl == "mmpost" else ["padded"]):
                            label = f"mmpost[{layout}]" if impl == "mmpost" and args.layouts != ["padded"] else impl
                            raw = launch(impl, shape, threads, model_dir, layout=layout, freeze_vision=args.freeze_vision)
                            summary = summarise(raw)
                            print(f"round {round_index} {shape} threads={threads} {label}: {summary['step_s']:.3f} s/step",
                                  flush=True)
                            runs.setdefault((shape, threads, label), []).append({"raw": raw, "summary": summary})
    results = []
    for (shape, threads, impl), items in runs.items():
        pooled = {key: [v for item in items for v in (item["raw"].get(key) or [])]
                  for key in ("step_s", "cpu_s", "update_s", "logprob_s", "gen_tokens", "vision_encodes")}
        pooled["peak_rss_mib"] = max(item["raw"]["peak_rss_mib"] for item in items)
        row = {"shape": shape, "threads": threads, "impl": impl, "runs": len(items), **summarise(pooled)}
        results.append(row)
    for row in results:
        for peer in ("trl_fp32", "trl"):
            match = next((r for r in results if r["impl"] == peer and r["shape"] == row["shape"]
                          and r["threads"] == row["threads"]), None)
            mine = row["impl"].startswith("mmpost") and match
            row[f"ratio_vs_{peer}"] = row["step_s"] / match["step_s"] if mine else None
            row[f"cpu_ratio_vs_{peer}"] = row["cpu_s"] / match["cpu_s"] if mine and row.get("cpu_s") and match.get("cpu_s") else None
    settings["load_average_after"] = os.getloadavg()
    import torch, transformers  # noqa: E401  (versions for the record)

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import trl as trl_module

        versions["trl"] = trl_module.__version__
    except ImportError:
        pass
    markdown = (f"# Throughput (CPU, {os.cpu_count()} cores)\n\nSettings: `{json.dumps(settings)}`\n\nVersions: `{json.dumps(versions)}`\n\n"
                f"s/step: median wall time over all measured steps of all rounds ({SETTINGS['warmup_steps']} warm-up steps "
                "dropped per run); CPU s/step: the process's CPU time per step (`time.process_time`), median: with 1 thread "
                "it measures the work itself and moves little with the machine's load, while wall time on a shared machine "
                "includes the time other jobs held the core; update s: mmpost "
                "`perf/update_s` (policy forward/backward + AdamW; its reference forward is in `perf/logprob_s`), "
                "naive: reference forward + policy forward/backward + AdamW, so the two are not directly comparable; "
                "TRL does not report it; peak RSS: per run (`ru_maxrss`), max over rounds. Fair TRL = `bf16=False, "
                "gradient_checkpointing=False` (the same fp32 work without recomputation); TRL defaults = bf16 autocast and "
                "gradient checkpointing. Implementations alternate within each round; load average (1/5/15 min) "
                f"{settings['load_average_before']} before, {settings['load_average_after']} after, on "
                f"{os.cpu_count()} cores.\n\n" + table(results) + "\n")
    print(markdown)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(markdown)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"settings": settings, "versions": versions, "results": results,
                                                         "runs": {"/".join(map(str, k)): v for k, v in runs.items()}}, indent=1))


if __name__ == "__main__":
    main()
