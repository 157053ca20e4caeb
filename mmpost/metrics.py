"""Run metrics: one JSON object per optimizer step in metrics.jsonl, and the reward/accuracy curve PNG.

Fixed namespaces: `loss/…`, `reward/<name>`, `rollout/…`, `perf/…`, `eval/<benchmark>/<metric>`.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricsLog:
    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

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
        with self.path.open("a") as handle:
            handle.write(json.dumps(_finite(record)) + "\n")

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


def plot_curves(records: list[dict[str, Any]], path: str | Path, *, title: str = "") -> None:
    """Reward per step (and held-out accuracy where evaluated) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in ["reward/mean"] + sorted({k for r in records for k in r if k.startswith("reward/") and k not in ("reward/mean", "reward/std", "reward/errors")}):
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            axis.plot(steps, [float("nan") if v is None else v for v in values], label=key, linewidth=1.5 if key == "reward/mean" else 0.8)
    eval_keys = sorted({k for r in records for k in r if k.startswith("eval/")})
    for key in eval_keys:
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            axis.plot(*zip(*points), marker="o", linestyle="--", label=key)
    axis.set_xlabel("step")
    axis.set_ylabel("reward / accuracy")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
