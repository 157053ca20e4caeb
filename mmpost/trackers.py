"""Experiment trackers (`train.report_to`) through accelerate's tracker API.

`train.report_to: [tensorboard, wandb]` (or `tensorboard,wandb`, or `all` for every installed one, as TRL's
`report_to`) hands the names to `Accelerator(log_with=...)`; the run then calls `accelerator.init_trackers` with
the resolved config, logs every metrics.jsonl record with `accelerator.log`, and at the end logs the summary, the
curves image and the run's files. Accelerate's own tracker classes do the writing, on the main process only.

Where the files go: TensorBoard under `<output_dir>/tensorboard/<project>/`, W&B under `<output_dir>/wandb/`
(online, or offline with `WANDB_MODE=offline`), MLflow to `MLFLOW_TRACKING_URI` (default `./mlruns`). Options per
tracker: `train.tracker_args: {wandb: {entity: my-team, tags: [grpo]}}` (the tracker's init keyword arguments).

This module only imports accelerate and the tracker packages when a run starts, so checking `report_to` in
`mmpost validate` costs nothing.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from mmpost.config import ConfigError
from mmpost.registry import closest_names

log = logging.getLogger(__name__)

# accelerate's LoggerType names -> the package each needs (tests/test_trackers.py checks this list against accelerate's).
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",), "comet_ml": ("comet_ml",),
    "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",), "swanlab": ("swanlab",), "trackio": ("trackio",),
}


def installed(name: str) -> bool:
    return any(importlib.util.find_spec(package) is not None for package in TRACKER_PACKAGES[name])


def resolve_report_to(value: Any) -> list[str]:
    """`train.report_to` as a list of tracker names; an unknown name or a missing package is one clear error."""
    if value is None:
        return []
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    names = [n for n in names if n and n.lower() != "none"]
    if "all" in names:
        return [n for n in TRACKER_PACKAGES if installed(n)]
    resolved = []
    for name in names:
        if name not in TRACKER_PACKAGES:
            hint = closest_names(name, TRACKER_PACKAGES)
            raise ConfigError(f"train.report_to: unknown tracker '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                              + f" Trackers: {', '.join(TRACKER_PACKAGES)}, all, none", key="train.report_to")
        if not installed(name):
            raise ConfigError(f"train.report_to={name} needs the '{TRACKER_PACKAGES[name][0]}' package, which is not "
                              f"installed: pip install {TRACKER_PACKAGES[name][0]}  (or pip install 'mmpost[trackers]')",
                              key="train.report_to")
        if name not in resolved:
            resolved.append(name)
    return resolved


def accelerator_tracking_kwargs(train_config: Any) -> dict[str, Any]:
    """`Accelerator(...)` keyword arguments for `train.report_to` (empty when no tracker is asked for)."""
    names = resolve_report_to(train_config.report_to)
    if not names:
        return {}
    from accelerate.utils import ProjectConfiguration

    output_dir = Path(train_config.output_dir)
    return {"log_with": names,
            "project_config": ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "tensorboard"))}


def flat_config(values: Any, prefix: str = "") -> dict[str, Any]:
    """The resolved config as `section.key -> scalar` (lists and mappings as JSON), the shape every tracker's
    hyperparameter table accepts (TensorBoard's add_hparams takes only bool/str/int/float)."""
    if isinstance(values, dict):
        flat: dict[str, Any] = {}
        for key, value in values.items():
            flat.update(flat_config(value, f"{prefix}{key}."))
        return flat
    key = prefix[:-1]
    if values is None or isinstance(values, (bool, int, float, str)):
        return {key: "None" if values is None else values}
    return {key: json.dumps(values, default=str)}


def loggable(record: dict[str, Any]) -> dict[str, float | int]:
    """The numeric entries of a metrics record (the step is the tracker's own axis)."""
    return {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


class Trackers:
    """The run's trackers: started with the config, fed every metrics record, closed with the summary."""

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator

    @classmethod
    def start(cls, accelerator: Any, config: Any, config_dict: dict[str, Any]) -> "Trackers | None":
        if not getattr(accelerator, "log_with", None):
            return None
        train = config.train
        output_dir = Path(train.output_dir)
        run_name = train.run_name or output_dir.resolve().name
        # The run's name where a tracker takes one (TensorBoard uses the folder); W&B files in the run folder.
        defaults = {"wandb": {"name": run_name, "dir": str(output_dir)}, "mlflow": {"run_name": run_name},
                    "swanlab": {"experiment_name": run_name}, "trackio": {"name": run_name}}
        init_kwargs = {name: {**defaults.get(name, {}), **dict(train.tracker_args.get(name, {}) or {})}
                       for name in resolve_report_to(train.report_to)}
        if "wandb" in init_kwargs:
            Path(init_kwargs["wandb"]["dir"]).mkdir(parents=True, exist_ok=True)
        accelerator.init_trackers(train.project, config=flat_config(config_dict), init_kwargs=init_kwargs)
        log.info("logging to %s", ", ".join(t.name for t in accelerator.trackers))
        return cls(accelerator)

    def log(self, record: dict[str, Any]) -> None:
        self.accelerator.log(loggable(record), step=int(record["step"]))

    def finish(self, *, step: int | None = None, summary: dict[str, Any] | None = None,
               files: dict[str, Path] | None = None) -> None:
        """Log the summary (numbers under `summary/`), the curves image and the run's files, then close every
        tracker (not `accelerator.end_training()`, which would also end the process group)."""
        summary = summary or {}
        files = {k: Path(v) for k, v in (files or {}).items() if v is not None and Path(v).is_file()}
        if not self.accelerator.is_main_process:
            return
        numbers = {f"summary/{k}": v for k, v in loggable(summary).items()}
        if numbers:
            self.accelerator.log(numbers, step=step)
        for tracker in self.accelerator.trackers:
            try:
                self._finish_one(tracker, step, summary, files)
            finally:
                tracker.finish()
        self.accelerator.trackers = []

    @staticmethod
    def _finish_one(tracker: Any, step: int | None, summary: dict[str, Any], files: dict[str, Path]) -> None:
        curves = files.get("curves")
        image = None
        if curves is not None:
            import numpy as np
            from PIL import Image

            image = np.asarray(Image.open(curves).convert("RGB"))
        text = json.dumps(summary, indent=1, default=str)
        if tracker.name == "tensorboard":
            writer = tracker.tracker
            if image is not None:
                writer.add_image("curves", image, global_step=step, dataformats="HWC")
            writer.add_text("summary", f"```\n{text}\n```", global_step=step)
            if "config" in files:
                writer.add_text("config", f"```\n{files['config'].read_text()}\n```", global_step=step)
            writer.flush()
        elif tracker.name == "wandb":
            tracker.tracker.summary.update(json.loads(text))
            if image is not None:
                tracker.log_images({"curves": [image]}, step=step)
        elif tracker.name == "mlflow":
            for path in files.values():
                tracker.log_artifact(str(path))
        elif image is not None and hasattr(tracker, "log_images"):
            tracker.log_images({"curves": [image]}, step=step)
