"""Benchmark evaluation inside the training loop (`eval.benchmarks` in a recipe).

The trainer reaches this module by name (`importlib.import_module("mmpost.eval.in_training")`), so the
engine never imports the harness. It runs the same prompts, encoders, greedy decoding and official
scorers as `mmpost eval --model`, on the live model and without files or caches, and returns flat
metrics named `eval/<benchmark>/<metric>` (the engine's metric namespace).

Call it on every rank, as `trainer.heldout_accuracy` is called: when torch.distributed is
initialised each rank generates items r, r + world, ..., answers are exchanged with
`all_gather_object`, and every rank scores the full set and returns the same numbers.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import torch

from mmpost.judge import Judge, JudgeUnavailableError
from mmpost.registry import BENCHMARKS

from mmpost.eval.runner import (
    GreedyGenerator, benchmark_data_dir, generate_for, modality_adapter, prepare_items, score_outputs,
)

log = logging.getLogger(__name__)


def flatten_metrics(benchmark: str, metrics: dict[str, Any]) -> dict[str, float]:
    """`eval/<benchmark>/<metric>` for every numeric metric (None and non-numbers are left out)."""
    return {f"eval/{benchmark}/{name}": float(value) for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def _shard_and_gather(entries: list, run) -> list[dict]:
    """This rank generates entries[rank::world]; every rank gets all records back, in entry order."""
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not distributed:
        return run(entries)
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = run(entries[rank::world])
    gathered: list[list[dict] | None] = [None] * world
    dist.all_gather_object(gathered, mine)
    merged: list[dict | None] = [None] * len(entries)
    for source, records in enumerate(gathered):
        for offset, record in enumerate(records or []):
            merged[source + offset * world] = record
    return merged  # type: ignore[return-value]


def evaluate_during_training(
    model: torch.nn.Module,
    processor: Any,
    benchmarks: list[str],
    data: dict,
    *,
    limit: int | None,
    max_new_tokens: int,
    batch_size: int = 8,
    mode: str = "official",
    judge: Judge | None = None,
    score_args: dict[str, dict] | None = None,
    modality_args: dict[str, dict] | None = None,
) -> dict[str, float]:
    """Score `model` on each benchmark; returns {"eval/<benchmark>/<metric>": value, ...} including
    `eval/<benchmark>/n_samples` and `eval/<benchmark>/seconds`.

    `data` maps benchmark -> data folder (or holds one folder for all, see `benchmark_data_dir`).
    A benchmark that cannot be scored (it needs a judge and none was given) is logged and left out,
    so a long training run is not stopped by its evaluation.
    """
    generator = GreedyGenerator(model, processor, batch_size=batch_size, max_new_tokens=max_new_tokens)
    metrics: dict[str, float] = {}
    for name in benchmarks:
        started = time.perf_counter()
        spec = BENCHMARKS.get(name)
        data_dir = benchmark_data_dir(data, name)
        prepared = prepare_items(spec, spec.load(data_dir, limit), data_dir, mode=mode)
        options = (modality_args or {}).get(spec.modality or "", {})
        adapter = modality_adapter(spec, options)

        def run(entries: list) -> list[dict]:
            return generate_for(spec, entries, generator, adapter, processor)

        records = _shard_and_gather(prepared, run)
        try:
            result, _ = score_outputs(spec, prepared, records, mode=mode, judge=judge,
                                      score_args=(score_args or {}).get(name))
        except JudgeUnavailableError as error:
            log.warning("eval/%s skipped: %s", name, error)
            continue
        metrics.update(flatten_metrics(name, result["metrics"]))
        metrics[f"eval/{name}/n_samples"] = float(len(prepared))
        metrics[f"eval/{name}/seconds"] = time.perf_counter() - started
    return metrics
