"""RLIR learning check: does GRPO on the inverse-dynamics reward raise a world model's action-following on held-out
conditioning, and do the gold metrics (a held-out IDM, pixel error to the true frames) agree? Runs
recipes/rlir_diffusion.yaml and recipes/rlir_ar.yaml from their cached SFT world models, 3 seeds each as parallel
processes, and writes benchmarks/results/learning_rlir.{md,json} and learning_rlir_*.png.

    python benchmarks/learning_rlir.py                                        # both recipes, 3 seeds, 60 steps
    python benchmarks/learning_rlir.py --recipes rlir_diffusion --seeds 0 --steps 5   # a quick look

Reported per recipe: the recipe's held-out metric (reward-IDM exact accuracy of deterministic generations on the
`heldout` split: the Euler ODE from fixed noise for the diffusion model, greedy for the AR one) before/after with
per-seed values, SE and the 2-SE test; per step the reward IDM, the gold IDM (trained on a disjoint split, never
optimised) and the pixel error of the RL rollouts (the reward against the truth); for the AR model the entropy and KL
to the warm start (mmpost.diagnostics, when present); for the diffusion model, recomputed on the held-out samples, the
gold IDM, the pixel MAE and `forced_action_accuracy` (does the output follow an action it is given?).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from learning_report import add_run_arguments, ensure_zoo_model, Job, Row, run_jobs, window_mean, write_report  # noqa: E402

RECIPES = {
    "rlir_diffusion": {"reward": "reward/idm_exact_frames", "gold": "reward/idm_gold_exact_frames",
                       "mae": "reward/pixel_mae_frames", "model": "tiny-diffusion-world-model-sft",
                       "label": "RLIR, flow-matching world model (Flow-GRPO SDE)"},
    "rlir_ar": {"reward": "reward/idm_exact", "gold": "reward/idm_gold_exact", "mae": "reward/pixel_mae",
                "model": "tiny-ar-world-model-sft", "label": "RLIR, autoregressive world model (Llama over frame tokens)"},
}


def diffusion_heldout_metrics(model_folder: str, heldout: int) -> dict[str, float]:
    """Gold IDM accuracy, pixel MAE and mean forced-action accuracy of ODE samples (the recipe's evaluation noise)."""
    import torch

    from mmpost.tasks.world_models.diffusion_rewards import (
        forced_action_accuracy, idm_exact_frames, idm_gold_exact_frames, pixel_mae_frames,
    )
    from mmpost.tasks.world_models.diffusion_task import EVAL_SEED, RlirDiffusionTask
    from mmpost.tasks.world_models.diffusion_wm import ActionConditionedFrameModel, frames_to_model, sample_frames

    torch.set_num_threads(1)
    folder = Path(model_folder)
    model = ActionConditionedFrameModel.from_pretrained(str(folder)).eval()
    sampler = json.loads((folder / "mmpost_generator.json").read_text())["sampler"]
    rows = RlirDiffusionTask(frames=model.config.num_frames, heldout_size=heldout).load("heldout")
    context = torch.stack([torch.as_tensor(r["context_frames"]) for r in rows])
    actions = torch.tensor([r["actions"] for r in rows])
    with torch.no_grad():
        generated = sample_frames(model, frames_to_model(context), actions, steps=int(sampler["num_steps"]),
                                  generator=torch.Generator().manual_seed(EVAL_SEED))
        outputs = list(generated.clamp(-1, 1))
        forced = statistics.mean(forced_action_accuracy(model, context, steps=int(sampler["num_steps"])))
    return {"idm": statistics.mean(idm_exact_frames(outputs, rows)), "gold": statistics.mean(idm_gold_exact_frames(outputs, rows)),
            "mae": statistics.mean(pixel_mae_frames(outputs, rows)), "forced": forced}


def ensure_artifacts(recipes: list[str]) -> None:
    """Build the cached SFT world models and IDMs once, before the seeds start (parallel first builds would race)."""
    import mmpost.tasks.world_models  # noqa: F401  (registers the zoo entries)
    from mmpost.tasks.world_models.idm import idm_artifact

    for kind in ("idm", "idm_gold"):  # the reward IDM and the gold IDM (each trained once, on its own split)
        idm_artifact(kind)

    for recipe in recipes:
        model = RECIPES[recipe]["model"]
        ensure_zoo_model(REPO / "artifacts" / model, model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "learning_rlir")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=60, help="RL steps of rlir_diffusion (and of rlir_ar unless --ar-steps)")
    parser.add_argument("--ar-steps", type=int, default=None)
    parser.add_argument("--heldout", type=int, default=64, help="held-out conditionings for the diffusion gold metrics")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ensure_artifacts(args.recipes)
    wall = {"artifacts": time.perf_counter() - started}
    steps = {r: (args.ar_steps if r == "rlir_ar" and args.ar_steps else args.steps) for r in args.recipes}
    jobs = [Job(key=(recipe, seed), recipe=recipe, output_dir=args.out / recipe / f"seed{seed}", seed=seed,
                steps=steps[recipe], overrides=[f"model.path={REPO / 'artifacts' / RECIPES[recipe]['model']}",
                                                "eval.every_n_steps=0", "train.save_every=0", *args.overrides])
            for recipe in args.recipes for seed in args.seeds]
    runs = run_jobs(jobs, parallel=args.parallel)
    wall["training"] = time.perf_counter() - started - wall["artifacts"]
    rows, lines = [], []
    gold: dict = {}
    if "rlir_diffusion" in args.recipes:
        folders = [str(REPO / "artifacts" / RECIPES["rlir_diffusion"]["model"])] + [
            str(args.out / "rlir_diffusion" / f"seed{s}" / "checkpoints" / f"step_{steps['rlir_diffusion']}" / "model")
            for s in args.seeds]
        with ProcessPoolExecutor(max_workers=args.parallel, mp_context=get_context("spawn")) as pool:
            measured = [f.result() for f in [pool.submit(diffusion_heldout_metrics, folder, args.heldout) for folder in folders]]
        gold = {"before": measured[0], "after": dict(zip(args.seeds, measured[1:]))}
        lines += ["Diffusion world model, recomputed on the held-out ODE samples (gold = the held-out IDM, trained on a "
                  "disjoint split and never optimised; forced = does the output follow an action it is given):", "",
                  "| metric | before | after (mean ± std) | per seed |", "|---|---|---|---|"]
        for key, name in (("idm", "reward-IDM exact"), ("gold", "gold-IDM exact"), ("mae", "pixel MAE (lower is better)"),
                          ("forced", "forced-action accuracy")):
            after = [m[key] for m in measured[1:]]
            lines.append(f"| {name} | {measured[0][key]:.3f} | {statistics.mean(after):.3f} ± "
                         f"{statistics.stdev(after) if len(after) > 1 else 0.0:.3f} | " + " / ".join(f"{v:.3f}" for v in after) + " |")
        lines.append("")
    lines += ["RL rollouts (training split), mean over seeds, first → last 10 steps:", "",
              "| recipe | reward IDM | gold IDM | pixel MAE |", "|---|---|---|---|"]
    for recipe in args.recipes:
        keys = RECIPES[recipe]
        cells = []
        for name in ("reward", "gold", "mae"):
            first = [window_mean(runs[(recipe, s)].curves.get(keys[name], []), 10, last=False) for s in args.seeds]
            last = [window_mean(runs[(recipe, s)].curves.get(keys[name], []), 10, last=True) for s in args.seeds]
            cells.append(f"{statistics.mean(first):.3f} → {statistics.mean(last):.3f}" if None not in first + last else "-")
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
        rows.append(Row(keys["label"], recipe, [runs[(recipe, s)] for s in args.seeds],
                        metric="held-out reward-IDM exact accuracy", task=recipe, warm_start=keys["model"], steps=steps[recipe]))
    wall["evaluation"] = time.perf_counter() - started - wall["artifacts"] - wall["training"]
    wall["total"] = time.perf_counter() - started
    lines += ["", f"Steps {steps}, seeds {args.seeds}, 1 thread per process, {args.parallel} at a time; wall time "
              + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items()) + " (a shared 2-core machine)."]
    body = write_report(rows, "learning_rlir", title="**RLIR** (`recipes/rlir_diffusion.yaml`, `recipes/rlir_ar.yaml`)",
                        results=args.results, text="\n".join(lines), extra={"diffusion_heldout": gold, "wall_seconds": wall})
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
