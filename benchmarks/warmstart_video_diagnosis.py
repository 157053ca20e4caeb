"""Why does the tiny Qwen2.5-VL not learn video_motion ("which way does the square move?")? Results:
benchmarks/results/warmstart_video_diagnosis.md.

    python benchmarks/warmstart_video_diagnosis.py input       # (a) decode + patch as training does, undo the patches
    python benchmarks/warmstart_video_diagnosis.py probe       # (b) linear / MLP probes along the model
    python benchmarks/warmstart_video_diagnosis.py positions   # (c) engine M-RoPE positions vs the model's own forward
    python benchmarks/warmstart_video_diagnosis.py sft NAME STEPS [--question motion|colour|side] [--modality '{..}']
                                                   [--base '{"rope_theta": 2}']   # (d) SFT from random init

Each part runs on the cached clips of the task (`VideoMotionTask`, train 1024 / held-out 128, seed 0). `sft` is the
warm start's own SFT (`tiny-qwen2.5-vl`, 16 prompts, lr 1e-3, seed 0) with greedy held-out accuracy every N steps;
`--question colour|side` asks a question about the same clips that needs no motion (the square's colour; which half
it starts in), to tell "cannot see the video" from "cannot read positions" from "cannot compare positions over time".
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
WARM = REPO / "artifacts" / "tiny-qwen2.5-vl-video"


def _task(train_size=1024, heldout_size=128):
    from mmpost.tasks.video_motion import VideoMotionTask

    return VideoMotionTask(train_size=train_size, heldout_size=heldout_size)


def _processor():
    from transformers import AutoProcessor

    from mmpost.modalities.image.tiny import build_tiny_qwen2_5_vl

    folder = Path(tempfile.mkdtemp()) / "tiny"
    build_tiny_qwen2_5_vl(folder, seed=0)
    return AutoProcessor.from_pretrained(folder), folder


def part_input(args) -> None:
    from mmpost.modalities.video import VideoModality
    from mmpost.modalities.video.processing import frames_from_patches
    from mmpost.tasks.video_motion import centroid_direction

    processor, _ = _processor()
    vp = processor.video_processor
    task = _task()
    for sample in task.load("train", size=args.clips):
        encoding = VideoModality(**args.modality).encode_prompt(processor, task.prompt(sample), sample)
        grid = encoding.media["video_grid_thw"][0].tolist()
        frames = frames_from_patches(encoding.media["pixel_values_videos"], grid, image_mean=vp.image_mean,
                                     image_std=vp.image_std)
        pixels = (frames * 255).round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        mask = np.abs(pixels - pixels[:, :1, :1]).sum(-1) > 60
        centres = [(float(np.nonzero(m)[1].mean()), float(np.nonzero(m)[0].mean())) for m in mask]
        info = sample["decoded"]["video_info"][0]
        print(f"{sample['answer']:5s} speed {sample['motion']['speed']:2d} frames {info['frame_indices']} grid {grid} "
              f"second_per_grid_ts {encoding.media['second_per_grid_ts'].tolist()} centroid direction "
              f"{centroid_direction(pixels.astype(np.uint8))} centroids (x, y) {[(round(x), round(y)) for x, y in centres]}")


def _probe(xtr, ytr, xte, yte, hidden=0, steps=400):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    torch.manual_seed(0)
    net = torch.nn.Linear(xtr.shape[1], 4) if not hidden else torch.nn.Sequential(
        torch.nn.Linear(xtr.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 4))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2 if not hidden else 3e-3, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        return (net(xtr).argmax(1) == ytr).float().mean().item(), (net(xte).argmax(1) == yte).float().mean().item()


def part_probe(args) -> None:
    from transformers import AutoModelForImageTextToText

    from mmpost.modalities.video import VideoModality
    from mmpost.tasks.video_motion import DIRECTIONS

    processor, random_folder = _processor()
    task = _task()
    data = {"train": task.load("train"), "heldout": task.load("heldout")}
    modality = VideoModality(**args.modality)
    enc = {k: [modality.encode_prompt(processor, task.prompt(s), s) for s in v] for k, v in data.items()}
    y = {k: torch.tensor([DIRECTIONS.index(s["answer"]) for s in v]) for k, v in data.items()}
    grid = enc["train"][0].media["video_grid_thw"][0].tolist()
    print(f"modality {args.modality}: grid {grid}, {len(y['train'])} train / {len(y['heldout'])} held-out clips; "
          "probe accuracy train / held-out (chance 0.25)")
    answer_ids = processor.tokenizer("<answer>", add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    first = [processor.tokenizer(d, add_special_tokens=False)["input_ids"][0] for d in DIRECTIONS]

    def report(name, features):
        lin = _probe(features["train"], y["train"], features["heldout"], y["heldout"])
        mlp = _probe(features["train"], y["train"], features["heldout"], y["heldout"], hidden=128)
        print(f"| {name} | {features['train'].shape[1]} | {lin[0]:.3f} / {lin[1]:.3f} | {mlp[0]:.3f} / {mlp[1]:.3f} |", flush=True)

    print("| features | dim | linear | MLP (128) |\n|---|---|---|---|")

    def raw(e):  # the G channel of pixel_values_videos, 2x2-pooled inside each 14 x 14 patch
        pv = e.media["pixel_values_videos"]
        return pv.reshape(pv.shape[0], 3, 2, 7, 2, 7, 2).mean((4, 6))[:, 1].reshape(-1)

    report("model input (pixel_values_videos)", {k: torch.stack([raw(e) for e in v]) for k, v in enc.items()})
    t, width = grid[0], 64
    for name, folder in (("warm start", WARM), ("random init", random_folder)):
        model = AutoModelForImageTextToText.from_pretrained(folder).eval()
        vision, answer = {}, {}
        with torch.no_grad():
            for k, v in enc.items():
                vf, hf = [], []
                for e in v:
                    out = model.model.visual(e.media["pixel_values_videos"], grid_thw=e.media["video_grid_thw"])
                    vf.append(out.pooler_output.reshape(-1))
                    ids = torch.cat([e.input_ids, answer_ids]).unsqueeze(0)
                    types = torch.cat([e.token_fields["mm_token_type_ids"], torch.zeros(len(answer_ids), dtype=torch.long)])
                    o = model(input_ids=ids, mm_token_type_ids=types.unsqueeze(0), output_hidden_states=True, **e.media)
                    hf.append(torch.cat([o.hidden_states[-1][0, -1], torch.softmax(o.logits[0, -1, first], -1)]))
                vision[k], answer[k] = torch.stack(vf), torch.stack(hf)
        report(f"{name}: vision output, all merged tokens in place", vision)
        report(f"{name}: vision output, mean over tokens (position-free)", {k: x.reshape(len(x), -1, width).mean(1) for k, x in vision.items()})
        report(f"{name}: vision output, mean per temporal patch", {k: x.reshape(len(x), t, -1, width).mean(2).reshape(len(x), -1) for k, x in vision.items()})
        report(f"{name}: LM last hidden state after `<answer>`", {k: x[:, :-4] for k, x in answer.items()})
        p = answer["heldout"][:, -4:]
        print(f"{name}: the model's own choice among the four first tokens, held-out accuracy "
              f"{(p.argmax(1) == y['heldout']).float().mean():.3f}, mean probabilities {[round(float(v), 3) for v in p.mean(0)]}")


def part_positions(args) -> None:
    from transformers import AutoModelForImageTextToText

    from mmpost.logprobs import pack_padded, position_ids_for
    from mmpost.modalities.video import VideoModality
    from mmpost.types import collate_prompts

    processor, folder = _processor()
    model = AutoModelForImageTextToText.from_pretrained(WARM if WARM.is_dir() else folder).eval()
    task = _task()
    for options in ({}, {"nframes": 8}):
        modality = VideoModality(**options)
        samples = task.load("train", size=3)
        encs = [modality.encode_prompt(processor, task.prompt(s), s) for s in samples]
        targets = [processor.tokenizer(task.target(s) + "<|im_end|>", add_special_tokens=False, return_tensors="pt")["input_ids"][0]
                   for s in samples]
        T, pad = max(len(t) for t in targets), processor.tokenizer.pad_token_id
        inputs = collate_prompts(encs, pad)
        width = inputs["input_ids"].shape[1]
        completion = torch.full((len(encs), T), pad)
        completion_mask = torch.zeros((len(encs), T), dtype=torch.long)
        for i, t in enumerate(targets):
            completion[i, : len(t)], completion_mask[i, : len(t)] = t, 1
        inputs["input_ids"] = torch.cat([inputs["input_ids"], completion], 1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], completion_mask], 1)
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completion)], 1)
        positions = position_ids_for(model, inputs)
        video = inputs["mm_token_type_ids"][0] == 2
        axes = [positions[a, 0, video] for a in range(3)]
        after = positions[:, 0, int(video.nonzero().max()) + 1].tolist()
        print(f"{options or 'fps 2'}: grid {encs[0].media['video_grid_thw'][0].tolist()} second_per_grid_ts "
              f"{encs[0].media['second_per_grid_ts'].tolist()}; video token ids relative to the first: temporal "
              f"{sorted(set((axes[0] - axes[0].min()).tolist()))} height {sorted(set((axes[1] - axes[1].min()).tolist()))} "
              f"width {sorted(set((axes[2] - axes[2].min()).tolist()))}; first video token at {int(axes[0].min())}, "
              f"next text token at {after}")
        packed, predictor, _ = pack_padded(model, inputs, width, T)
        worst = 0.0
        with torch.no_grad():
            logits = model(**packed, use_cache=False).logits[0]
            for i, (e, t) in enumerate(zip(encs, targets)):
                ids = torch.cat([e.input_ids, t])[None]
                types = torch.cat([e.token_fields["mm_token_type_ids"], torch.zeros_like(t)])[None]
                alone = model(input_ids=ids, mm_token_type_ids=types, **e.media).logits[0, e.input_ids.numel() - 1 : -1]
                worst = max(worst, (alone - logits[predictor[i, : len(t)]]).abs().max().item())
        print(f"   engine's packed pass vs each row's own forward (model's get_rope_index): max |logit difference| {worst:.1e}")
    config = model.config.text_config
    theta, section = config.rope_parameters["rope_theta"], config.rope_parameters["mrope_section"]
    head_dim = config.hidden_size // config.num_attention_heads
    inv = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    bounds = np.cumsum([0] + list(section))
    for axis, (lo, hi) in zip(("temporal", "height", "width"), zip(bounds[:-1], bounds[1:])):
        print(f"rope_theta {theta:g}, section {section}: {axis} frequencies {[round(float(f), 3) for f in inv[lo:hi]]} rad per unit")


def part_sft(args) -> None:
    from mmpost.config import config_from_dict
    from mmpost.modalities.image.tiny import build_tiny_qwen2_5_vl
    from mmpost.registry import TASKS
    from mmpost.tasks.video_motion import VideoMotionTask
    from mmpost.tasks.video_motion.task import COLOURS
    from mmpost.trainer import train

    task = "video_motion"
    if args.question != "motion":
        task = f"video_motion_{args.question}_diagnosis"

        class Question(VideoMotionTask):
            """The video_motion clips asked a question that needs no motion (diagnosis only, not a shipped task)."""

            name = task

            def load(self, split, *, size=None, seed=None):
                rows = super().load(split, size=size, seed=seed)
                if args.question == "colour":
                    return [{**r, "problem": "What colour is the square?", "answer": r["motion"]["colour"],
                             "choices": sorted(COLOURS)} for r in rows]
                def half(r):
                    return "left" if r["motion"]["start"][0] + r["motion"]["side"] / 2 < self.size / 2 else "right"
                return [{**r, "problem": "Does the square start in the left or the right half?", "answer": half(r),
                         "choices": ["left", "right"]} for r in rows]

        if task not in TASKS:
            TASKS.register(task)(Question)
    out = REPO / "runs" / "warmstart_video_diagnosis" / args.name
    base = out / "base"
    build_tiny_qwen2_5_vl(base, seed=0, **args.base)
    raw = {"model": {"path": str(base)},
           "data": {"task": task, "task_args": {"seed": 0, "train_size": 1024, "heldout_size": 128},
                    "modality_args": args.modality, "prompts_per_step": 16},
           "algorithm": {"source": "sft"}, "optim": {"lr": args.lr},
           "train": {"steps": args.steps, "seed": 0, "output_dir": str(out / "run"), "progress": False},
           "eval": {"heldout": True, "every_n_steps": args.every, "pass_k": 0, "diagnostics_every": 0, "kl_to_start": False},
           "rollout": {"max_new_tokens": 12}}
    started = time.time()
    train(config_from_dict(raw))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    curve, losses = [], []
    for line in (out / "run" / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        losses.append(record.get("loss/sft"))
        for key, value in record.items():
            if key.startswith("eval/") and key.endswith("/accuracy"):
                window = [v for v in losses[-50:] if v is not None]
                curve.append((record["step"], value, sum(window) / max(len(window), 1)))
    print(f"{args.name}: question {args.question}, modality {args.modality}, base {args.base}, lr {args.lr}")
    print("| step | " + " | ".join(str(s) for s, _, _ in curve) + " |")
    print("|---" * (len(curve) + 1) + "|")
    print("| held-out greedy | " + " | ".join(f"{a:.3f}" for _, a, _ in curve) + " |")
    print("| SFT loss per token (last 50 steps) | " + " | ".join(f"{l:.3f}" for _, _, l in curve) + " |")
    print(f"wall {time.time() - started:.0f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["input", "probe", "positions", "sft"])
    parser.add_argument("name", nargs="?", default="sft")
    parser.add_argument("steps", nargs="?", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--question", choices=["motion", "colour", "side"], default="motion")
    parser.add_argument("--modality", type=json.loads, default={}, help="video modality options, e.g. '{\"nframes\": 8}'")
    parser.add_argument("--base", type=json.loads, default={}, help="tiny-qwen2.5-vl builder options, e.g. '{\"rope_theta\": 2}'")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    {"input": part_input, "probe": part_probe, "positions": part_positions, "sft": part_sft}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
