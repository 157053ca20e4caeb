"""Run metrics: one JSON object per optimizer step in metrics.jsonl (and the same record to any experiment
tracker, `mmpost.trackers`), and the curves PNG.

Fixed namespaces: `loss/…`, `reward/<name>`, `rollout/…`, `perf/…`, `data/…`, `eval/<benchmark>/<metric>`.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class MetricsLog:
    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.trackers: Any = None  # mmpost.trackers.Trackers once a run with `train.report_to` starts

    def truncate_after(self, step: int) -> None:
        """On resume, forget lines of steps after the checkpoint (they will be recomputed), and a torn last line."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [json.dumps(record) for record in self.read() if record["step"] <= step]
        staging = self.path.with_name(f".{self.path.name}.tmp")
        staging.write_text("".join(line + "\n" for line in kept))
        os.replace(staging, self.path)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = _finite(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.trackers is not None:
            self.trackers.log(record)

    def close(self, **final: Any) -> None:
        """End the trackers (with the summary and files in `final`, see `Trackers.finish`); metrics.jsonl needs nothing."""
        if self.trackers is not None:
            trackers, self.trackers = self.trackers, None
            trackers.finish(**final)

    def read(self) -> list[dict[str, Any]]:
        """The records; a torn last line (a crash in the middle of writing it) is left out, a bad line elsewhere is
        an error naming the file and line."""
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                if number == len(lines) and not text.endswith("\n"):
                    log.warning("%s:%d: ignoring a torn last line (the run stopped while writing it)", self.path, number)
                    continue
                from mmpost.types import DataError

                raise DataError(f"{self.path}:{number}: not a JSON record ({error.msg}); the metrics file is damaged") from None
        return records


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def smooth(values: list[float | None], window: int) -> np.ndarray:
    """Trailing moving average over the last `window` finite values (missing ones skipped, not counted as 0)."""
    array = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    finite = np.isfinite(array)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, array, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    ends = np.arange(1, len(array) + 1)
    starts = np.maximum(ends - window, 0)
    n = counts[ends] - counts[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[ends] - sums[starts]) / np.maximum(n, 1), np.nan)


def smoothing_window(n: int) -> int:
    """About a tenth of the run (at least 1, at most 50 steps)."""
    return max(1, min(50, round(n / 10)))


_NOT_REWARD_PARTS = ("reward/mean", "reward/std", "reward/errors", "reward/kl_penalty")


def _series(records: list[dict[str, Any]], key: str) -> list[float | None]:
    return [r.get(key) for r in records]


def _has(records: list[dict[str, Any]], key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) for r in records)


def plot_curves(records: list[dict[str, Any]], path: str | Path, *, title: str = "",
                heldout: dict[str, Any] | None = None) -> list[str]:
    """Four panels: reward (raw trace and its moving average, per reward part), held-out accuracy (before/after and
    any periodic evaluation), the loss, and the KL to the reference. `heldout` holds `before`, `after` and `name`.
    Returns the figure's title, panel titles, legend labels and notes (what a reader of the PNG sees as text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in records])
    window = smoothing_window(len(records))
    figure, axes = plt.subplots(2, 2, figsize=(11, 7))
    (reward_axis, eval_axis), (loss_axis, kl_axis) = axes

    def raw_and_smoothed(axis, key: str, label: str, colour: str, *, raw: bool = True) -> None:
        values = _series(records, key)
        if raw:
            axis.plot(steps, [np.nan if v is None else v for v in values], color=colour, alpha=0.25, linewidth=0.8)
        axis.plot(steps, smooth(values, window), color=colour, linewidth=1.8, label=label)

    raw_and_smoothed(reward_axis, "reward/mean", f"reward/mean (raw, and mean of {window})", "C0")
    parts = sorted({k for r in records for k in r if k.startswith("reward/") and k not in _NOT_REWARD_PARTS})
    for index, key in enumerate(parts):
        if _has(records, key):
            raw_and_smoothed(reward_axis, key, key, f"C{index + 1}", raw=False)
    reward_axis.set_title("reward (policy rollouts)", fontsize=10)

    heldout = heldout or {}
    plotted_eval = False
    for index, key in enumerate(sorted({k for r in records for k in r if k.startswith("eval/")})):
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if points:
            eval_axis.plot(*zip(*points), marker="o", linestyle="--", color=f"C{index + 1}", label=key)
            plotted_eval = True
    last = int(steps[-1]) if len(steps) else 0
    for label, step, value, marker in (("before", 0, heldout.get("before"), "s"), ("after", last, heldout.get("after"), "D")):
        if isinstance(value, (int, float)) and math.isfinite(value):
            eval_axis.scatter([step], [value], marker=marker, s=60, color="C0", zorder=3, label=f"{label}: {value:.3f}")
            eval_axis.annotate(f"{value:.3f}", (step, value), textcoords="offset points", xytext=(6, 6), fontsize=8)
            plotted_eval = True
    if isinstance(heldout.get("before"), (int, float)) and isinstance(heldout.get("after"), (int, float)):
        eval_axis.plot([0, last], [heldout["before"], heldout["after"]], color="C0", linewidth=0.8, alpha=0.5)
    eval_axis.set_title(f"held-out accuracy{' (' + heldout['name'] + ')' if heldout.get('name') else ''}", fontsize=10)
    if not plotted_eval:
        eval_axis.text(0.5, 0.5, "no held-out evaluation in this run", ha="center", va="center", transform=eval_axis.transAxes)

    loss_keys = [k for k in ("loss/total", "loss/policy", "loss/sft") if _has(records, k)]
    for index, key in enumerate(loss_keys):
        raw_and_smoothed(loss_axis, key, key, f"C{index}", raw=key == "loss/total")
    loss_axis.set_title("loss", fontsize=10)
    if not loss_keys:
        loss_axis.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=loss_axis.transAxes)

    kl_keys = [k for k in ("loss/kl", "reward/kl_penalty", "loss/approx_kl") if _has(records, k)]
    for index, key in enumerate(kl_keys):
        raw_and_smoothed(kl_axis, key, key, f"C{index}", raw=index == 0)
    kl_axis.set_title("KL (to the reference; approx_kl: to the rollout policy)", fontsize=10)
    if not kl_keys:
        kl_axis.text(0.5, 0.5, "no KL term (algorithm.kl_coef = 0)", ha="center", va="center", transform=kl_axis.transAxes)

    for axis in axes.flat:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    texts = [title] + [axis.get_title() for axis in axes.flat]
    texts += [label for axis in axes.flat for label in axis.get_legend_handles_labels()[1]]
    texts += [text.get_text() for axis in axes.flat for text in axis.texts]
    plt.close(figure)
    return texts


def curves_title(*, run: str, method: str, task: str, model: str, steps: int) -> str:
    return f"{run}: {method} on {task} | model {model} | {steps} steps"
