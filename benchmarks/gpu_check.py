"""GPU check of the vLLM rollout backend: a short GRPO on a ~100M-parameter Qwen2.5-VL built from a config.

    python benchmarks/gpu_check.py --out /tmp/gpu_check              # ~10 GRPO steps, rollout.backend=vllm
    python benchmarks/gpu_check.py --out /tmp/gpu_check --dry-run    # build the model and check the config only (CPU)
    python benchmarks/gpu_check.py --backend hf                      # the same run with transformers' generate

No hub access is needed: the model is `tiny-qwen2.5-vl`'s builder at a larger size (random weights, the
project's local BPE tokenizer), the task is the built-in synthetic `shapes` task, and the loop is
`mmpost.trainer.train` from recipes/grpo.yaml with overrides. Prints, from `metrics.jsonl` (median over
the steps after the first, which pays vLLM's warm-up): rollout tokens/s (`rollout/gen_tokens` /
`perf/rollout_s`), update seconds (`perf/update_s`), weight-sync seconds (`perf/sync_s`), and peak GPU
memory (PyTorch's allocator, which in the in-process engine also holds vLLM's weights and KV cache).
Random weights earn no reward: this measures speed and plumbing, not learning.
benchmarks/gpu_check.sh sets up a venv from wheels brought along and runs this.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/mmpost_gpu_check", help="folder for the model and the run")
    parser.add_argument("--steps", type=int, default=10, help="GRPO steps")
    parser.add_argument("--backend", default="vllm", choices=["vllm", "hf"], help="rollout backend")
    parser.add_argument("--prompts-per-step", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8, help="G: samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    # ~95M parameters by default: 16 text layers of width 768 (12 heads of 64), a 4-block vision tower.
    parser.add_argument("--text-hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vision-hidden", type=int, default=384)
    parser.add_argument("--vision-layers", type=int, default=4)
    parser.add_argument("--max-pixels", type=int, default=448 * 448, help="image budget: 256 visual tokens at 448x448")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3, help="vLLM's share of GPU memory")
    parser.add_argument("--sleep-mode", action="store_true", help="vLLM enable_sleep_mode: sleep after rollout, wake to sync")
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter (pushed merged to vLLM)")
    parser.add_argument("--dry-run", action="store_true", help="build the model and validate the config, then stop")
    args = parser.parse_args(argv)
    if args.text_hidden % args.heads or (args.text_hidden // args.heads) < 32:
        parser.error(f"--text-hidden {args.text_hidden} / --heads {args.heads} must give a head_dim >= 32 "
                     "(vLLM's attention backends reject smaller heads)")
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is vLLM's warm-up and is not reported)")
    return args


def build_model(args: argparse.Namespace) -> tuple[Path, int]:
    """Write the model folder (reused when its config already matches) and return it with its parameter count."""
    import torch

    from mmpost.modalities.image.tiny import build_tiny_qwen2_5_vl

    shape = dict(text_hidden=args.text_hidden, layers=args.layers, heads=args.heads, vision_hidden=args.vision_hidden,
                 vision_layers=args.vision_layers, max_pixels=args.max_pixels)
    folder = Path(args.out) / "model"
    stamp = folder / "gpu_check_shape.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == shape):
        torch.set_num_threads(min(torch.get_num_threads(), 8))
        build_tiny_qwen2_5_vl(folder, **shape)
        stamp.write_text(json.dumps(shape))
    from safetensors import safe_open

    count = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "pt") as weights:
            count += sum(_numel(weights.get_slice(name).get_shape()) for name in weights.keys())
    return folder, count


def _numel(shape) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total


def make_config(args: argparse.Namespace, model_folder: Path):
    from mmpost.config import load_config

    backend_args = {}
    if args.backend == "vllm":
        backend_args = {"gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": 2048,
                        "enable_sleep_mode": args.sleep_mode}
    overrides = [
        f"model.path={model_folder}", "model.zoo=null", f"model.dtype={args.dtype}", f"model.lora.enabled={str(args.lora).lower()}",
        f"rollout.backend={args.backend}", f"rollout.num_generations={args.generations}",
        f"rollout.max_new_tokens={args.max_new_tokens}", f"data.prompts_per_step={args.prompts_per_step}",
        f"data.modality_args={{max_pixels: {args.max_pixels}}}",
        f"train.steps={args.steps}", f"train.output_dir={Path(args.out) / 'run'}", "train.threads=null", "train.progress=false",
        "eval.heldout=false", "algorithm.micro_batch_size=32",
    ]
    config = load_config(REPO / "recipes" / "grpo.yaml", overrides)
    config.rollout.backend_args = backend_args
    return config


def summarise(records: list[dict], peak_bytes: int | None) -> dict[str, float]:
    """Medians over the steps after the first (the first pays engine warm-up and lazy initialisation)."""
    steady = records[1:] or records

    def median(key: str) -> float:
        values = [r[key] for r in steady if key in r]
        return statistics.median(values) if values else float("nan")

    tokens_per_s = [r["rollout/gen_tokens"] / r["perf/rollout_s"] for r in steady if r.get("perf/rollout_s")]
    return {
        "rollout_tokens_per_s": statistics.median(tokens_per_s) if tokens_per_s else float("nan"),
        "rollout_s": median("perf/rollout_s"),
        "update_s": median("perf/update_s"),
        "sync_s": median("perf/sync_s"),
        "step_s": median("perf/step_s"),
        "logprob_mismatch": median("rollout/logprob_mismatch"),
        "peak_gpu_gib": peak_bytes / 2**30 if peak_bytes is not None else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model_folder, parameters = build_model(args)
    config = make_config(args, model_folder)
    from mmpost.builder import validate
    import mmpost.rollout.vllm  # noqa: F401  registers "vllm" until mmpost.rollout imports it (vllm itself loads lazily)

    checked = validate(config)
    print(f"model {model_folder}: {parameters / 1e6:.1f}M parameters (built/checked in {time.perf_counter() - start:.1f}s)")
    print("config: " + "; ".join(checked))
    print(f"plan: {args.steps} GRPO steps x {args.prompts_per_step} prompts x {args.generations} samples, "
          f"<= {args.max_new_tokens} new tokens, rollout.backend={args.backend} {config.rollout.backend_args}")
    if args.dry_run:
        return 0

    import torch

    if not torch.cuda.is_available():
        print("no GPU visible: this check is meant for a GPU machine (use --dry-run on CPU)", file=sys.stderr)
        return 2
    from mmpost.trainer import train

    torch.cuda.reset_peak_memory_stats()
    summary = train(config)
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines() if line.strip()]
    result = summarise(records, torch.cuda.max_memory_allocated())
    free, total = torch.cuda.mem_get_info()
    result["gpu_used_now_gib"] = (total - free) / 2**30
    result.update(parameters_m=parameters / 1e6, backend=args.backend, steps=len(records), gpu=torch.cuda.get_device_name())
    print(json.dumps(result, indent=1))
    (Path(args.out) / f"gpu_check_{args.backend}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":  # vLLM may spawn worker processes, which re-import this file
    sys.exit(main())
