"""A fixed-seed snapshot of what the engine computes, to show that a refactor changed no behaviour.

    python benchmarks/equivalence_snapshot.py record --out benchmarks/results/equivalence_before.json \
        [--keep-weights /tmp/eq_before] [--cases grpo visurf]
    python benchmarks/equivalence_snapshot.py compare benchmarks/results/equivalence_before.json \
        benchmarks/results/equivalence_after.json [--weights /tmp/eq_before /tmp/eq_after]

`record` builds the tiny models (the shapes and world-model warm starts are SFT runs through the engine, so they are
part of the snapshot), then runs each case below for a few optimizer steps with fixed seeds, one fresh subprocess per
case (so no state leaks between cases and a case gives the same numbers whichever others run). It stores, per case,
every logged value of every step except wall-clock timings (`perf/*_s`): losses, rewards, ratios, clip fractions,
log-prob mismatch, grad norms, lengths; the run summary's held-out accuracies; and, for the final weights, the SHA-256
of every tensor plus its float64 sum, so `compare` reports bit-identity or the size of a difference. With
`--keep-weights` the final `model.safetensors` of every case is kept, and `compare --weights` then gives the max
absolute weight difference where hashes differ.

The cases cover the token policy's three log-prob layouts (padded, packed with a token budget, shared prefix), the
full-distribution path (ASFT), a LoRA reference (adapter disabled), frozen-vision feature reuse, PPO epochs (ratios
away from 1), the experience sources (SFT, on-policy, ViSurf, CHORD, HPT, RLIR), a 1-D-RoPE Llama world model and
the denoising policy (Flow-GRPO). Not a test: it takes a few minutes on one thread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = 3

# Every case: recipe, the model it starts from (a key of `build_models`), and overrides on top of `_preset`.
CASES: dict[str, dict] = {
    "sft_from_random": {"recipe": "sft", "model": "vl_random", "overrides": {}},
    "sft_asft": {"recipe": "sft", "model": "vl_warm", "overrides": {"algorithm.sft_loss": "asft"}},
    "grpo": {"recipe": "grpo", "model": "vl_warm",
             "overrides": {"algorithm.kl_coef": 0.04, "eval.heldout": "true", "data.heldout_size": 8}},
    "grpo_padded": {"recipe": "grpo", "model": "vl_warm",
                    "overrides": {"algorithm.kl_coef": 0.04, "algorithm.logprob_pass": "padded"}},
    "grpo_packed_budget": {"recipe": "grpo", "model": "vl_warm",
                           "overrides": {"algorithm.kl_coef": 0.04, "algorithm.logprob_pass": "packed",
                                         "algorithm.token_budget": 160}},
    "grpo_ppo_epochs": {"recipe": "grpo", "model": "vl_warm",
                        "overrides": {"algorithm.ppo_epochs": 2, "algorithm.micro_batch_size": 4,
                                      "algorithm.kl_coef": 0.04, "algorithm.kl_estimator": "k2"}},
    "grpo_lora": {"recipe": "grpo", "model": "vl_warm",
                  "overrides": {"model.lora.enabled": "true", "algorithm.kl_coef": 0.04, "optim.lr": 1e-2}},
    "grpo_frozen_vision": {"recipe": "grpo", "model": "vl_warm",
                           "overrides": {"model.freeze_vision": "true", "algorithm.kl_coef": 0.04}},
    "visurf": {"recipe": "visurf", "model": "vl_warm", "overrides": {}},
    "chord": {"recipe": "chord", "model": "vl_warm", "overrides": {}},
    "hpt": {"recipe": "hpt", "model": "vl_warm", "overrides": {}},
    "rlir_ar": {"recipe": "rlir_ar", "model": "ar_world_model",
                "overrides": {"data.task_args.frames": 2, "data.task_args.train_size": 8, "data.task_args.heldout_size": 2,
                              "data.heldout_size": 2, "rollout.max_new_tokens": 2 * 65 + 1, "eval.every_n_steps": 0,
                              "data.prompts_per_step": 2, "algorithm.ppo_epochs": 2}},
    "flow_grpo": {"recipe": "flow_grpo", "model": "flow_generator",
                  "overrides": {"data.prompts_per_step": 2, "data.task_args.heldout_size": 8, "eval.batch_size": 8,
                                "eval.heldout": "true", "rollout.num_generations": 4}},
}


def _preset(model_dir: str, output_dir: str, extra: dict) -> list[str]:
    """The tests' tiny CPU preset (tests/conftest.py `tiny_overrides`), fixed seed, `STEPS` steps."""
    values = {
        "model.path": model_dir, "model.zoo": "null", "train.output_dir": output_dir, "train.threads": 1,
        "train.progress": "false", "train.steps": STEPS, "train.seed": 0, "data.prompts_per_step": 4,
        "rollout.num_generations": 4, "rollout.max_new_tokens": 8, "data.heldout_size": 8, "eval.heldout": "false",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


# -- children ---------------------------------------------------------------------------------------
def build_models(models: Path, names: list[str]) -> dict[str, str]:
    """The starting models the cases need, built with fixed seeds (warm starts run SFT through the engine under
    test, so they are part of the snapshot)."""
    import mmpost.modalities  # noqa: F401  (registers the zoo entries)
    import mmpost.tasks  # noqa: F401
    from mmpost.registry import MODEL_ZOO
    from mmpost.warmstart import sft_warm_start

    builders = {
        "vl_random": lambda: MODEL_ZOO.get("tiny-qwen2.5-vl")(models / "vl_random", seed=0),
        "vl_warm": lambda: MODEL_ZOO.get("tiny-qwen2.5-vl-shapes")(models / "vl_warm", steps=30),
        # 40 SFT steps (as tests/test_recipe_rlir_ar.py): the model writes whole frames, so rewards vary in a group.
        "ar_world_model": lambda: sft_warm_start(
            models / "ar_world_model", base_zoo="tiny-ar-world-model", task="rlir_ar", seed=0, steps=40, lr=3e-3,
            prompts_per_step=8, task_args={"train_split": "world_model", "train_size": 160, "frames": 2},
            extra={"rollout": {"max_new_tokens": 2 * 65 + 1}, "train": {"threads": 1}}),
        "flow_generator": lambda: MODEL_ZOO.get("tiny-flow-generator-shapes")(models / "flow_generator", steps=10),
    }
    return {name: str(builders[name]()) for name in names}


def weight_summary(path: Path) -> dict[str, list]:
    """Per tensor: [SHA-256 of its bytes, float64 sum]."""
    import torch
    from safetensors.torch import load_file

    summary = {}
    for name, tensor in sorted(load_file(str(path)).items()):
        data = tensor.contiguous().view(torch.uint8).numpy().tobytes()
        summary[name] = [hashlib.sha256(data).hexdigest(), float(tensor.double().sum())]
    return summary


def model_file(folder: Path) -> Path:
    candidates = sorted(folder.rglob("*.safetensors"))
    if not candidates:
        raise FileNotFoundError(f"{folder}: no .safetensors file")
    return next((c for c in candidates if c.name in ("model.safetensors", "adapter_model.safetensors")), candidates[0])


def run_case(name: str, model_dir: str, work: Path, keep: Path | None) -> dict:
    import torch

    import mmpost

    torch.set_num_threads(1)
    case = CASES[name]
    config = mmpost.load_config(REPO / "recipes" / f"{case['recipe']}.yaml", _preset(model_dir, str(work / name), case["overrides"]))
    summary = mmpost.train(config)
    steps = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines() if line.strip()]
    recorded = [{k: v for k, v in step.items() if not (k.startswith("perf/") and k.endswith("_s"))} for step in steps]
    final = model_file(Path(summary["checkpoint"]) / "model")
    if keep is not None:
        (keep / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(final, keep / name / final.name)
    return {"steps": recorded, "summary": {k: summary.get(k) for k in ("heldout_accuracy_before", "heldout_accuracy_after", "steps")},
            "weights": weight_summary(final)}


def check_isolated() -> None:
    """The plugins must come from this copy. An editable install maps `mmpost.tasks`/`.modalities`/`.eval` to the
    checkout it was installed from, so a `git archive` copy on PYTHONPATH gets its own `mmpost/` but that checkout's
    plugins unless the copy's `mmpost/` links them (`ln -s ../tasks mmpost/tasks`, the same for modalities, eval)."""
    import importlib

    for name in ("mmpost", "mmpost.tasks", "mmpost.modalities", "mmpost.eval"):
        where = Path(next(iter(importlib.import_module(name).__path__))).resolve()
        if not where.is_relative_to(REPO):
            raise SystemExit(f"{name} is imported from {where}, not from {REPO}: link the plugin folders into this "
                             "copy's mmpost/ (ln -s ../tasks mmpost/tasks; ../modalities; ../eval) and rerun")


def child(args: argparse.Namespace) -> None:
    check_isolated()
    if args.child == "build":
        result = build_models(Path(args.models), json.loads(args.paths))
        result = {"paths": result, "weights": {k: weight_summary(model_file(Path(v))) for k, v in result.items()}}
    else:
        paths = json.loads(args.paths)
        result = run_case(args.child, paths[CASES[args.child]["model"]], Path(args.work),
                          Path(args.keep_weights) if args.keep_weights else None)
    print("RESULT " + json.dumps(result), flush=True)


def launch(*extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, __file__, *extra], env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(extra[:2])} failed:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# -- record and compare -----------------------------------------------------------------------------
def record(args: argparse.Namespace) -> None:
    import torch
    import transformers

    names = args.cases or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="mmpost-equivalence-") as scratch:
        needed = sorted({CASES[name]["model"] for name in names})
        built = launch("--child", "build", "--models", str(Path(scratch) / "models"), "--paths", json.dumps(needed))
        snapshot = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                    "steps": STEPS, "models": built["weights"], "cases": {}}
        for name in names:
            print(f"case {name} ...", flush=True)
            extra = ["--keep-weights", args.keep_weights] if args.keep_weights else []
            snapshot["cases"][name] = launch("--child", name, "--paths", json.dumps(built["paths"]),
                                             "--work", str(Path(scratch) / "runs"), *extra)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


def _number_diff(a, b) -> float | None:
    """0.0 when equal (NaN == NaN), the absolute difference of two numbers, inf for any other mismatch; None if equal."""
    if a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        return None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b)
    return math.inf


def _weights_diff(before: dict, after: dict, folders: tuple[Path, Path] | None, where: str) -> tuple[int, float | None]:
    """(tensors whose bytes differ, max |difference| when the kept weight files allow computing it)."""
    changed = [k for k in set(before) | set(after) if before.get(k, [None])[0] != after.get(k, [None])[0]]
    if not changed or folders is None:
        return len(changed), (0.0 if not changed else None)
    from safetensors.torch import load_file

    files = [model_file(folder / where) for folder in folders]
    if not all(f.is_file() for f in files):
        return len(changed), None
    a, b = (load_file(str(f)) for f in files)
    return len(changed), max(float((a[k].double() - b[k].double()).abs().max()) for k in changed if k in a and k in b)


def compare(args: argparse.Namespace) -> int:
    before, after = (json.loads(Path(p).read_text()) for p in (args.before, args.after))
    folders = tuple(Path(p) for p in args.weights) if args.weights else None
    worst = 0.0
    lines = ["| case | logged values | bit-identical | max abs diff | weight tensors differing | max weight diff |",
             "|---|---|---|---|---|---|"]
    for name, model in before["models"].items():
        changed = sum(before["models"][name][k][0] != after["models"].get(name, {}).get(k, [None])[0] for k in model)
        lines.append(f"| model {name} | - | - | - | {changed} | - |")
        worst = max(worst, math.inf if changed else 0.0)
    for name in before["cases"]:
        if name not in after["cases"]:
            lines.append(f"| {name} | missing after | | | | |")
            worst = math.inf
            continue
        b, a = before["cases"][name], after["cases"][name]
        total, identical, largest = 0, 0, 0.0
        for step_b, step_a in zip(b["steps"], a["steps"]):
            for key in set(step_b) | set(step_a):
                total += 1
                diff = _number_diff(step_b.get(key), step_a.get(key))
                if diff is None:
                    identical += 1
                else:
                    largest = max(largest, diff)
        if len(b["steps"]) != len(a["steps"]):
            largest = math.inf
        for key in set(b["summary"]) | set(a["summary"]):
            total += 1
            diff = _number_diff(b["summary"].get(key), a["summary"].get(key))
            identical += diff is None
            largest = max(largest, diff or 0.0)
        count, weight_diff = _weights_diff(b["weights"], a["weights"], folders, name)
        worst = max(worst, largest, weight_diff if weight_diff is not None else (math.inf if count else 0.0))
        shown = "n/a (no kept weights)" if weight_diff is None else f"{weight_diff:.3g}"
        lines.append(f"| {name} | {total} | {identical} | {largest:.3g} | {count} of {len(b['weights'])} | {shown} |")
    print("\n".join(lines))
    verdict = "bit-identical" if worst == 0.0 else (f"within {args.tolerance:g}" if worst <= args.tolerance else "DIFFERENT")
    print(f"\nlargest difference: {worst:.3g} -> {verdict}")
    return 0 if worst <= args.tolerance else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    rec = commands.add_parser("record", help="run the cases and write a snapshot")
    rec.add_argument("--out", required=True)
    rec.add_argument("--cases", nargs="+", help=f"a subset of: {', '.join(CASES)}")
    rec.add_argument("--keep-weights", help="copy every case's final weights into this folder")
    cmp_ = commands.add_parser("compare", help="compare two snapshots")
    cmp_.add_argument("before")
    cmp_.add_argument("after")
    cmp_.add_argument("--weights", nargs=2, help="the two --keep-weights folders, for weight differences")
    cmp_.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--keep-weights", dest="keep_weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    elif args.command == "record":
        record(args)
    elif args.command == "compare":
        sys.exit(compare(args))
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
