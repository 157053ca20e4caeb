"""Flow-GRPO learning check: held-out hit rate of the tiny class-conditioned generator before/after
`recipes/flow_grpo.yaml`, 3 seeds as parallel processes, with the diagnostics that say why it moves.

    python benchmarks/learning_flow.py                      # 3 seeds x 60 steps, 2 processes
    python benchmarks/learning_flow.py --seeds 0 --steps 5  # a quick look

Every seed starts from the same cached warm start (zoo `tiny-flow-generator-shapes`, flow-matching pre-trained once
into artifacts/). Reported per seed:
- held-out hit rate, the recipe's own metric: `flow_shapes_hit` (is the class's quadrant the brightest?) of ODE
  samples from fixed start noise, before and after;
- held-out sampled hit rate and pass@k: k = the group size SDE samples per prompt at the training noise level, from
  fixed noise (the same draws before and after) -- the headroom that group-relative RL turns into the ODE sample;
- from metrics.jsonl: the training reward (quadrant contrast), KL to the reference on the step means, clip fraction.
Writes benchmarks/results/learning_flow.{md,json} and learning_flow_grpo.png.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from learning_report import add_run_arguments, ensure_zoo_model, Job, Row, run_jobs, write_report  # noqa: E402

RECIPE = REPO / "recipes" / "flow_grpo.yaml"
WARM = REPO / "artifacts" / "tiny-flow-generator-shapes"
SAMPLING_SEED = 4321  # held-out SDE draws for pass@k: the same noise before and after


def sampled_heldout(model_dir: Path, heldout: int, k: int) -> dict[str, float]:
    """k SDE samples (training noise level) per held-out prompt: mean hit rate and pass@k (any of the k hits)."""
    import torch

    from mmpost.config import load_config
    from mmpost.denoising import DenoisingPolicy, SDEBackend
    from mmpost.registry import MODALITIES, TASKS
    from mmpost.rollout.base import SamplingParams
    from mmpost.tasks.flow_shapes import flow_shapes_hit

    config = load_config(RECIPE, [f"model.path={model_dir}", "model.zoo=null"])
    task = TASKS.get(config.data.task)(**{**config.data.task_args, "heldout_size": heldout})
    rows = task.load("heldout")
    model = DenoisingPolicy.load_model(config.model, str(model_dir))
    policy = DenoisingPolicy(model, DenoisingPolicy.load_processor(str(model_dir)), task, MODALITIES.get(task.modality)())
    with torch.no_grad():
        result = SDEBackend(model, policy=policy, seed=SAMPLING_SEED).generate(policy.encode_prompts(rows), rows,
                                                                               SamplingParams(n=k))
    hits = flow_shapes_hit(result.outputs, [r for r in rows for _ in range(k)])
    return {"sampled_accuracy": statistics.mean(hits),
            "pass_at_k": statistics.mean(max(hits[i * k : (i + 1) * k]) for i in range(len(rows)))}


def ensure_warm_start() -> None:
    import mmpost.tasks.flow_shapes  # noqa: F401  (registers the zoo entry)

    ensure_zoo_model(WARM, "tiny-flow-generator-shapes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "learning_flow")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--heldout", type=int, default=64)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ensure_warm_start()
    overrides = [f"model.path={WARM}", f"data.task_args.heldout_size={args.heldout}", "train.save_every=0", *args.overrides]
    jobs = [Job(key=seed, recipe="flow_grpo", overrides=overrides, output_dir=args.out / f"seed{seed}", seed=seed,
                steps=args.steps) for seed in args.seeds]
    runs = run_jobs(jobs, parallel=args.parallel)
    k = 8  # the recipe's group size
    before = sampled_heldout(WARM, args.heldout, k)
    for seed, run in runs.items():
        after = sampled_heldout(args.out / f"seed{seed}" / "checkpoints" / f"step_{args.steps}" / "model", args.heldout, k)
        run.summary.update({f"heldout_{name}_before": value for name, value in before.items()})
        run.summary.update({f"heldout_{name}_after": value for name, value in after.items()})
        run.summary["heldout_pass_k_before"] = k
    row = Row("Flow-GRPO", "flow_grpo", [runs[s] for s in args.seeds], metric="held-out hit rate (ODE, fixed noise)",
              task="flow_grpo_shapes", warm_start="tiny-flow-generator-shapes", steps=args.steps)
    text = (f"Held-out: {args.heldout} prompts; hit = the class's quadrant is the brightest. Sampled / pass@{k}: {k} SDE "
            f"samples per prompt at the training noise level, from fixed noise. {args.steps} steps, seeds {args.seeds}, "
            f"1 thread per seed, {args.parallel} at a time; whole benchmark {time.perf_counter() - started:.0f} s "
            "(a shared 2-core machine).")
    body = write_report([row], "learning_flow", title=f"**Flow-GRPO** (`recipes/flow_grpo.yaml`, {args.steps} steps)",
                        results=args.results, text=text)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
