"""Can the tiny Qwen2.5-VL see where things are? SFT from random init on single-question shapes tasks, across RoPE
base (rope_theta) and model size: the measurement behind the tiny models' positional settings (README, "Warm starts").

    python benchmarks/warmstart_study.py                                  # the grid below, 2 processes at a time
    python benchmarks/warmstart_study.py --thetas 1e6 100 --sizes tiny --kinds position --steps 200

Why: with head_dim 16 the text decoder's M-RoPE has 8 frequencies theta^(-i/8), split [2, 3, 3] into temporal, height
and width. At the hub's theta = 1e6 the width frequencies are 1.8e-4, 3.2e-5 and 5.6e-6 rad per merged patch, the
height ones 0.032, 0.0056 and 0.001: two image tokens a column apart get the same rotation to 4 decimals, so attention
cannot tell left from right by position. Each run trains `sft` from a random model built with the given settings and
reports greedy held-out accuracy (128 held-out questions, disjoint scenes). Writes benchmarks/results/warmstart_study.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO, RESULTS, Job, mean_std, run_jobs  # noqa: E402

SIZES = {  # name -> tiny builder options
    "tiny": {"text_hidden": 64, "layers": 2, "heads": 4, "vision_hidden": 32, "vision_layers": 2},
    "small": {"text_hidden": 128, "layers": 4, "heads": 4, "vision_hidden": 64, "vision_layers": 2},
}
KINDS = {"position1": "left/right, one shape", "position": "left/right (width)", "vertical": "top/bottom (height)", "color": "colour (no position)",
         "mix": "colour, count, left/right, top/bottom"}


def rotation_per_patch(theta: float, head_dim: int) -> dict[str, list[float]]:
    """Radians per merged patch of each M-RoPE frequency, by axis (Qwen2-VL's chunked [t, h, w] sections)."""
    from mmpost.modalities.image.tiny import mrope_section_for

    half = head_dim // 2
    frequencies = [theta ** (-2 * i / head_dim) for i in range(half)]
    t, h, _ = mrope_section_for(head_dim)
    return {"temporal": frequencies[:t], "height": frequencies[t : t + h], "width": frequencies[t + h :]}


def accuracy_by_kind(folder: Path, kinds: list[str], heldout: int = 128) -> dict[str, float]:
    """Greedy held-out accuracy of a model folder on each question kind alone (disjoint held-out scenes)."""
    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.trainer import heldout_accuracy

    out = {}
    for kind in kinds:
        config = load_config(REPO / "recipes" / "sft.yaml", [f"model.path={folder}", "model.zoo=null", "train.threads=1",
                                                               f"data.task_args={{kinds: [{kind}], heldout_size: {heldout}}}",
                                                               "train.output_dir=/tmp/mmpost-study-eval"])
        out[kind] = heldout_accuracy(build_run(config))
    return out


def parameter_count(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thetas", type=float, nargs="+", default=[1e6, 100.0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=sorted(SIZES))
    parser.add_argument("--kinds", nargs="+", default=["position", "vertical", "color", "mix"], choices=sorted(KINDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", default="runs/warmstart-study")
    parser.add_argument("--name", default="warmstart_study", help="results file name (benchmarks/results/NAME.md)")
    args = parser.parse_args(argv)

    from mmpost.registry import MODEL_ZOO

    out = REPO / args.out
    models, jobs = {}, []
    for size in args.sizes:
        for theta in args.thetas:
            for seed in args.seeds:
                folder = out / "models" / f"{size}-theta{theta:g}-seed{seed}"
                if not (folder / "config.json").is_file():
                    MODEL_ZOO.get("tiny-qwen2.5-vl")(folder, seed=seed, rope_theta=theta, **SIZES[size])
                models[(size, theta, seed)] = folder
                for kind in args.kinds:
                    kinds = {"mix": "[color, count, position, vertical]", "position1": "[position], max_shapes: 1"}.get(kind, f"[{kind}]")
                    jobs.append(Job(key=(size, theta, kind, seed), recipe="sft", seed=seed, steps=args.steps,
                                    output_dir=out / f"{size}-theta{theta:g}-{kind}-seed{seed}",
                                    overrides=[f"model.path={folder}", "model.zoo=null", "data.prompts_per_step=16",
                                               f"optim.lr={args.lr}", f"data.task_args={{kinds: {kinds}, heldout_size: 128}}",
                                               "eval.pass_k=0", "eval.diagnostics_every=0"]))
    runs = run_jobs(jobs, parallel=args.parallel)
    lines = [f"SFT from random init, {args.steps} steps × 16 prompts, lr {args.lr:g}; greedy held-out accuracy "
             f"(128 questions), seeds {args.seeds}.", "",
             "| model | parameters | rope_theta | width rad/patch (max) | height rad/patch (max) | "
             + " | ".join(KINDS[k] for k in args.kinds) + " |", "|---|---|---|---|---|" + "---|" * len(args.kinds)]
    raw = []
    for size in args.sizes:
        head_dim = SIZES[size]["text_hidden"] // SIZES[size]["heads"]
        for theta in args.thetas:
            rotation = rotation_per_patch(theta, head_dim)
            cells = []
            for kind in args.kinds:
                values = [runs[(size, theta, kind, seed)].after for seed in args.seeds]
                mean, std = mean_std(values)
                cells.append(f"{mean:.3f}" + (f" ± {std:.3f}" if len(values) > 1 else ""))
                raw.append({"size": size, "theta": theta, "kind": kind, "seeds": args.seeds, "accuracy": values})
            count = parameter_count(models[(size, theta, args.seeds[0])])
            lines.append(f"| {size} (hidden {SIZES[size]['text_hidden']}, {SIZES[size]['layers']} layers, head_dim {head_dim}) | "
                         f"{count / 1e3:.0f}k | {theta:g} | {max(rotation['width']):.2g} | {max(rotation['height']):.2g} | "
                         + " | ".join(cells) + " |")
    if "mix" in args.kinds:  # which kinds the mixed SFT learned
        names = ["color", "count", "position", "vertical"]
        lines += ["", "The mixed runs by question kind (greedy, 128 held-out questions each; chance 0.25 / 0.25 / 0.5 / 0.5):", "",
                  "| model | rope_theta | seed | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for size in args.sizes:
            for theta in args.thetas:
                for seed in args.seeds:
                    folder = out / f"{size}-theta{theta:g}-mix-seed{seed}"
                    cache = folder / "by_kind.json"
                    if not cache.is_file():
                        model = folder / "checkpoints" / f"step_{args.steps}" / "model"
                        cache.write_text(json.dumps(accuracy_by_kind(model, names)))
                    by_kind = json.loads(cache.read_text())
                    raw.append({"size": size, "theta": theta, "kind": "mix-by-kind", "seed": seed, "accuracy": by_kind})
                    lines.append(f"| {size} | {theta:g} | {seed} | " + " | ".join(f"{by_kind[n]:.3f}" for n in names) + " |")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(text + "\n")
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"steps": args.steps, "lr": args.lr, "runs": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
