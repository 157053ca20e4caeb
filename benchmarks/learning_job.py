"""One benchmark run, as `mmpost train RECIPE overrides...` runs it, with the held-out evaluation before training
looked up instead of recomputed when an identical one exists (learning_report.cached_before): the warm start's
"before" numbers are the same for every method started from it and, for the greedy pass, every seed.

    python benchmarks/learning_job.py recipes/grpo.yaml train.seed=1 train.output_dir=runs/x [--cache DIR]

1. the key: the config less its training-only fields, the warm start's folder content, the held-out rows' content,
   the code and library versions, the seed (learning_report.before_key_fields);
2. on a miss, the engine's own evaluation functions (`heldout_accuracy`, `RunDiagnostics.heldout_sampling`) on a
   run built from the warm start, exactly as `mmpost train` calls them before its first step;
3. training with `eval.heldout=false` (the engine's loop, unchanged: the held-out evaluation draws no random numbers
   from the training stream; the greedy pass uses none and the sampling pass forks its own);
4. the evaluation after, with the same functions on a run built from the final checkpoint (bit-identical weights);
5. summary.json with the same `heldout_*_before` / `heldout_*_after` keys `mmpost train` writes, plus
   `heldout_before_reused` and `heldout_before_key`, and the run's curves.png with its held-out numbers.

Tasks that score the policy in an environment (`evaluate_policy`: World-Env), policies that are not token policies
and LoRA runs are run by `mmpost train` unchanged (their evaluation may use the run's random stream or weights this
script does not reload). tests/test_learning_report.py checks the numbers equal `mmpost train`'s.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO, before_key_fields, cached_before, content_digest  # noqa: E402

DEFAULT_CACHE = REPO / "runs" / "heldout-before-cache"


def heldout_numbers(run) -> dict[str, float]:
    """The held-out numbers `mmpost train` records before (and after) training, keyed without the _before suffix."""
    from mmpost.diagnostics import RunDiagnostics
    from mmpost.trainer import _heldout_decode, heldout_accuracy

    run.diagnostics = RunDiagnostics(run)
    numbers = {"heldout_accuracy": heldout_accuracy(run)}
    numbers.update({f"heldout_{k}": v for k, v in run.diagnostics.heldout_sampling(run, _heldout_decode(run)).items()})
    return numbers


def reusable(config, task) -> str | None:
    """Why this run's evaluation cannot be split from its training (None when it can)."""
    if not config.eval.heldout:
        return "eval.heldout is off"
    if config.model.lora.enabled:
        return "a LoRA run (the evaluation after would need the adapter reloaded)"
    if callable(getattr(task, "evaluate_policy", None)):
        return "the task scores the policy in an environment"
    return None


def before_numbers(config, task, cache_dir: Path = DEFAULT_CACHE) -> tuple[dict[str, float], bool, str]:
    """The held-out numbers of `config`'s warm start (model.path) before training: (numbers, reused, key)."""
    from mmpost.builder import build_run, load_split, reward_specs, seed_everything
    from mmpost.policy import TokenPolicy

    seed_everything(config.train.seed)  # as build_run does before it loads the split
    rows = load_split(task, "heldout", config)
    accuracy = next((vars(s) for s in reward_specs(config, task) if s.name == task.accuracy_reward), task.accuracy_reward)
    fields = before_key_fields(config, rows, accuracy)

    def evaluate_warm_start() -> dict[str, float]:
        run = build_run(config)
        if not isinstance(run.policy, TokenPolicy):
            raise SystemExit(f"{config.model.path}: not a token policy; run it with mmpost train")
        numbers = heldout_numbers(run)
        del run
        gc.collect()
        return numbers

    numbers, reused = cached_before(cache_dir, fields, evaluate_warm_start)
    return numbers, reused, content_digest(fields)


def run_job(config, cache_dir: Path = DEFAULT_CACHE) -> dict:
    from mmpost.builder import build_run, build_task
    from mmpost.model import ensure_model_folder
    from mmpost.trainer import train

    ensure_model_folder(config.model)
    task = build_task(config)
    why_not = reusable(config, task)
    if why_not:
        print(f"[learning_job] evaluated inside the run: {why_not}", flush=True)
        return train(config)
    before, reused, key = before_numbers(config, task, cache_dir)
    print(f"[learning_job] held-out before training: {'reused' if reused else 'computed'} {before}", flush=True)
    summary = train(replace(config, eval=replace(config.eval, heldout=False)))
    if "checkpoint" not in summary:
        return summary  # interrupted or stopped early: no final evaluation, as with mmpost train
    after = heldout_numbers(build_run(config, policy_path=str(Path(summary["checkpoint"]) / "model")))
    summary.update({f"{k}_before": v for k, v in before.items()})
    summary.update({f"{k}_after": v for k, v in after.items()})
    summary.update(heldout_before_reused=reused, heldout_before_key=key)
    output_dir = Path(config.train.output_dir)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    # The run's curves.png, drawn again with the held-out numbers (as mmpost train draws it when it evaluates).
    from mmpost.metrics import MetricsLog, curves_title, plot_curves

    records = MetricsLog(output_dir / "metrics.jsonl").read()
    if records:
        title = curves_title(run=config.train.run_name or output_dir.resolve().name, method=config.algorithm.source,
                             task=task.name, model=Path(config.model.path).name or config.model.path, steps=summary["steps"])
        plot_curves(records, output_dir / "curves.png", title=title, heldout={
            "before": summary["heldout_accuracy_before"], "after": summary["heldout_accuracy_after"], "name": task.name})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    from mmpost.config import load_config

    summary = run_job(load_config(args.recipe, args.overrides), args.cache)
    print(json.dumps({k: v for k, v in summary.items() if k.startswith("heldout_")}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
