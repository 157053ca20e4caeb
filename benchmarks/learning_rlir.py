"""RLIR learning check: does GRPO on the inverse-dynamics reward raise action-following of a world model, and do the
gold metrics (a held-out IDM, pixel error) agree? Runs recipes/rlir_diffusion.yaml (and recipes/rlir_ar.yaml) over
several RL seeds from the same SFT world model, prints a table and writes JSON under benchmarks/results/.

    python benchmarks/learning_rlir.py                           # 3 seeds, 60 steps, both recipes
    python benchmarks/learning_rlir.py --steps 5 --seeds 0 --recipes rlir_diffusion   # a quick look
    python benchmarks/learning_rlir.py --recipes rlir_diffusion --set algorithm.kl_coef=0 --out /tmp/kl0.json

Columns:
- held-out IDM acc.: the recipe's own evaluation (summary.json): reward-IDM exact accuracy of deterministic samples on
  the `heldout` split (diffusion: Euler ODE from fixed noise; AR: greedy), before and after RL;
- diffusion only, recomputed here on the same held-out samples for the SFT model and the final checkpoint: the gold
  IDM's accuracy, the pixel MAE, and `forced_action_accuracy` (does the output follow an action it is given?);
- train-batch windows (metrics.jsonl, mean of the first and last `--window` steps): the reward IDM, the gold IDM and the
  pixel MAE of the RL rollouts themselves (SDE / sampled, on the `rl` split).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "rlir_diffusion": {"reward": "reward/idm_exact_frames", "gold": "reward/idm_gold_exact_frames",
                       "mae": "reward/pixel_mae_frames", "model": "tiny-diffusion-world-model-sft"},
    "rlir_ar": {"reward": "reward/idm_exact", "gold": "reward/idm_gold_exact", "mae": "reward/pixel_mae",
                "model": "tiny-ar-world-model-sft"},
}


def window_means(records: list[dict], key: str, window: int) -> tuple[float | None, float | None]:
    """Mean of `key` over the first and the last `window` training steps (None when never logged)."""
    values = [r[key] for r in records if key in r]
    if not values:
        return None, None
    window = max(1, min(window, len(values) // 2 or 1))
    return statistics.mean(values[:window]), statistics.mean(values[-window:])


@torch.no_grad()
def diffusion_heldout_metrics(model_folder: Path, heldout: int) -> dict[str, float]:
    """Gold IDM accuracy, pixel MAE and mean forced-action accuracy of ODE samples (the recipe's evaluation noise)."""
    from mmpost.tasks.world_models.diffusion_rewards import (
        forced_action_accuracy, idm_exact_frames, idm_gold_exact_frames, pixel_mae_frames,
    )
    from mmpost.tasks.world_models.diffusion_task import EVAL_SEED, RlirDiffusionTask
    from mmpost.tasks.world_models.diffusion_wm import ActionConditionedFrameModel, frames_to_model, sample_frames

    model = ActionConditionedFrameModel.from_pretrained(str(model_folder)).eval()
    sampler = json.loads((model_folder / "mmpost_generator.json").read_text())["sampler"]
    rows = RlirDiffusionTask(frames=model.config.num_frames, heldout_size=heldout).load("heldout")
    context = torch.stack([torch.as_tensor(r["context_frames"]) for r in rows])
    actions = torch.tensor([r["actions"] for r in rows])
    generated = sample_frames(model, frames_to_model(context), actions, steps=int(sampler["num_steps"]),
                              generator=torch.Generator().manual_seed(EVAL_SEED))
    outputs = list(generated.clamp(-1, 1))
    mean = statistics.mean
    return {"idm": mean(idm_exact_frames(outputs, rows)), "gold": mean(idm_gold_exact_frames(outputs, rows)),
            "mae": mean(pixel_mae_frames(outputs, rows)),
            "forced": mean(forced_action_accuracy(model, context, steps=int(sampler["num_steps"])))}


def run_one(recipe: str, seed: int, steps: int, threads: int, window: int, heldout: int, output: Path,
            extra: list[str]) -> dict:
    from mmpost.config import load_config
    from mmpost.trainer import train

    keys = RECIPES[recipe]
    run_dir = output / f"{recipe}-seed{seed}"
    overrides = [f"train.seed={seed}", f"train.steps={steps}", f"train.output_dir={run_dir}", "train.progress=false",
                 f"train.threads={threads}", "eval.every_n_steps=0", f"model.path={REPO / 'artifacts' / keys['model']}"] + list(extra)
    started = time.perf_counter()
    summary = train(load_config(REPO / "recipes" / f"{recipe}.yaml", overrides))
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    row = {"recipe": recipe, "seed": seed, "steps": steps, "overrides": list(extra), "seconds": seconds,
           "seconds_per_step": summary.get("seconds_per_step"),
           "heldout_before": summary["heldout_accuracy_before"], "heldout_after": summary["heldout_accuracy_after"],
           "zero_variance_fraction": statistics.mean(r.get("rollout/zero_variance_fraction", 0.0) for r in records),
           "clip_fraction": statistics.mean(r.get("loss/clip_fraction", 0.0) for r in records)}
    for name in ("reward", "gold", "mae"):
        row[f"train_{name}_first"], row[f"train_{name}_last"] = window_means(records, keys[name], window)
    if recipe == "rlir_diffusion":
        before = diffusion_heldout_metrics(REPO / "artifacts" / keys["model"], heldout)
        after = diffusion_heldout_metrics(Path(summary["checkpoint"]) / "model", heldout)
        for name in ("gold", "mae", "forced"):
            row[f"heldout_{name}_before"], row[f"heldout_{name}_after"] = before[name], after[name]
        # Same samples as the recipe's evaluation, so the reward-IDM number must agree with summary.json.
        row["heldout_recomputed_after"] = after["idm"]
    return row


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60, help="RL steps of rlir_diffusion (and of rlir_ar unless --ar-steps)")
    parser.add_argument("--ar-steps", type=int, default=None)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--window", type=int, default=10, help="training steps averaged at the start and the end")
    parser.add_argument("--heldout", type=int, default=64, help="held-out conditionings for the diffusion gold metrics")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override applied to every run (repeatable), e.g. algorithm.kl_coef=0")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "learning_rlir.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = REPO / "runs" / "learning_rlir" / (args.out.stem if args.overrides else "")
    rows = []
    for recipe in args.recipes:
        steps = args.ar_steps if recipe == "rlir_ar" and args.ar_steps is not None else args.steps
        for seed in args.seeds:
            rows.append(run_one(recipe, seed, steps, args.threads, args.window, args.heldout, output, args.overrides))
            print(json.dumps(rows[-1]), flush=True)
    print("\nheld-out = deterministic samples on the heldout split; train = first/last "
          f"{args.window} RL steps (rollouts on the rl split); gold = the held-out IDM; MAE lower is better")
    print(f"{'recipe':<15}{'seed':>5}{'steps':>6} | {'held-out IDM':^15} | {'held-out gold':^15} | {'held-out MAE':^15} | "
          f"{'train IDM':^15} | {'train gold':^15} | {'train MAE':^15} | {'s/step':>6}")
    for r in rows:
        cells = [(r["heldout_before"], r["heldout_after"]), (r.get("heldout_gold_before"), r.get("heldout_gold_after")),
                 (r.get("heldout_mae_before"), r.get("heldout_mae_after")), (r["train_reward_first"], r["train_reward_last"]),
                 (r["train_gold_first"], r["train_gold_last"]), (r["train_mae_first"], r["train_mae_last"])]
        print(f"{r['recipe']:<15}{r['seed']:>5}{r['steps']:>6} | " + " | ".join(f"{_fmt(a)}->{_fmt(b)}" for a, b in cells)
              + f" | {r['seconds_per_step'] or 0:6.2f}")
    summary = {}
    for recipe in args.recipes:
        mine = [r for r in rows if r["recipe"] == recipe]
        entry = {}
        for name, (first, last) in {"heldout": ("heldout_before", "heldout_after"),
                                    "heldout_gold": ("heldout_gold_before", "heldout_gold_after"),
                                    "heldout_mae": ("heldout_mae_before", "heldout_mae_after"),
                                    "heldout_forced": ("heldout_forced_before", "heldout_forced_after"),
                                    "train_gold": ("train_gold_first", "train_gold_last"),
                                    "train_mae": ("train_mae_first", "train_mae_last")}.items():
            if all(r.get(first) is not None and r.get(last) is not None for r in mine):
                deltas = [r[last] - r[first] for r in mine]
                entry[name] = {"before_mean": statistics.mean(r[first] for r in mine),
                               "after_mean": statistics.mean(r[last] for r in mine), "delta_mean": statistics.mean(deltas),
                               "delta_std": statistics.stdev(deltas) if len(deltas) > 1 else 0.0}
        summary[recipe] = entry
        for name, s in entry.items():
            print(f"{recipe:<15} {name:<15} mean {s['before_mean']:.3f} -> {s['after_mean']:.3f} "
                  f"(delta {s['delta_mean']:+.3f} ± {s['delta_std']:.3f} over {len(mine)} seeds)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "summary": summary, "args": {k: str(v) for k, v in vars(args).items()}},
                                   indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
