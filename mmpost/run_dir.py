"""A run's output folder: who may write there, how a run starts or resumes in it, and its log file.

A run owns `train.output_dir` while it trains (an exclusive lock, released when the process ends, even by kill -9).
A new run refuses a folder that holds another run's checkpoints or metrics unless `train.resume=auto` (continue
that run) or `train.overwrite_output_dir=true` (start over; the other run's checkpoints stay on disk and are never
pruned, because pruning only touches checkpoints carrying this run's id). A resumed run is compared with its
checkpoint's config: keys that define the run must not change; the others (lr, steps, cadence, ...) may, and each
change is logged and recorded in `trainer_state.json`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from mmpost.checkpoint import checkpoint_root, is_complete_checkpoint, step_folders
from mmpost.config import Config, ConfigError, config_changes, origin_of, to_dict

log = logging.getLogger(__name__)

LOCK_NAME = ".mmpost.lock"
LOG_NAME = "train.log"


class OutputDirError(ConfigError):
    """The output folder cannot be used as asked (another run's files, a run in progress, a mismatching resume)."""


@dataclass
class RunStart:
    """How a run begins: fresh or from a checkpoint, with its id and the config keys that changed since."""

    output_dir: Path
    run_id: str
    resume_from: Path | None = None
    changes: dict[str, tuple] = field(default_factory=dict)  # resumable keys: {key: (checkpoint value, new value)}


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def claim_output_dir(config: Config) -> Iterator[RunStart]:
    """Lock `train.output_dir`, decide how the run starts there (see the module docstring), and release the lock
    when the run ends. Nothing is read from a model and nothing of another run is deleted here."""
    output_dir = Path(config.train.output_dir)
    lock = _lock(output_dir) if _is_main_process() else None
    try:
        yield plan_start(config, output_dir)
    finally:
        if lock is not None:
            lock.close()  # closing the file releases the flock


def _lock(output_dir: Path):
    import fcntl

    output_dir.mkdir(parents=True, exist_ok=True)
    handle = open(output_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OutputDirError(f"{output_dir}: another mmpost run ({holder}) is writing to this folder; wait for it to end "
                             "or choose another train.output_dir", key="train.output_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    handle.flush()
    return handle


def plan_start(config: Config, output_dir: Path) -> RunStart:
    """Fresh start, resume, or refusal, from what `output_dir` holds and `train.resume` / `train.overwrite_output_dir`."""
    resume = config.train.resume
    root = checkpoint_root(output_dir)
    latest = root / "latest"
    steps = step_folders(root)
    metrics = output_dir / "metrics.jsonl"
    has_metrics = metrics.is_file() and metrics.stat().st_size > 0
    if resume and resume != "auto":
        folder = Path(resume)
        if (steps or has_metrics) and os.path.abspath(folder.parent) != os.path.abspath(root):
            raise OutputDirError(f"train.resume={resume!r} continues a checkpoint from elsewhere, but train.output_dir="
                                 f"{str(output_dir)!r} holds another run; give an empty train.output_dir", key="train.output_dir")
        return _resumed(config, output_dir, folder)
    if resume == "auto":
        if latest.is_file():
            return _resumed(config, output_dir, root / latest.read_text().strip())
        if steps:
            raise OutputDirError(f"{output_dir}: train.resume=auto found no checkpoints/latest but step folders "
                                 f"{[p.name for p in steps]}: resume from one with train.resume=<folder>, or start over with "
                                 "train.overwrite_output_dir=true", key="train.resume")
        if has_metrics and _is_main_process():
            # The earlier run stopped before its first checkpoint: nothing to resume, but its metrics are kept.
            kept = metrics.with_name(f"metrics.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
            os.replace(metrics, kept)
            log.warning("%s: no checkpoint to resume; starting at step 1 (the earlier metrics were moved to %s)", output_dir, kept.name)
        return RunStart(output_dir, new_run_id())
    if steps or latest.is_file() or has_metrics:
        held = ([f"{len(steps)} checkpoint(s) ({', '.join(p.name for p in steps[-3:])})"] if steps else []) + \
            (["metrics.jsonl"] if has_metrics else [])
        if not config.train.overwrite_output_dir:
            raise OutputDirError(
                f"train.output_dir={str(output_dir)!r} holds another run ({' and '.join(held) or 'checkpoints/latest'}); "
                "continue it with train.resume=auto, start over there with train.overwrite_output_dir=true (its "
                "checkpoints are kept, its metrics replaced), or choose another train.output_dir", key="train.output_dir")
        if _is_main_process():
            # `latest` would resume the other run if this one stopped before its first checkpoint.
            for name in ("checkpoints/latest", "metrics.jsonl", "summary.json", "curves.png"):
                (output_dir / name).unlink(missing_ok=True)
        log.warning("train.overwrite_output_dir: starting a new run in %s; the earlier run's %s stay on disk and are "
                    "never pruned by this run", output_dir, f"checkpoints {[p.name for p in steps]}" if steps else "files")
    return RunStart(output_dir, new_run_id())


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _resumed(config: Config, output_dir: Path, folder: Path) -> RunStart:
    if not is_complete_checkpoint(folder):
        raise OutputDirError(f"{folder}: not a complete mmpost checkpoint (no trainer_state.json); train.resume takes "
                             "'auto' or a checkpoints/step_<N> folder", key="train.resume")
    state = json.loads((folder / "trainer_state.json").read_text())
    saved = folder / "config.yaml"
    changes: dict[str, tuple] = {}
    if saved.is_file():
        before = yaml.safe_load(saved.read_text()) or {}
        changes, fixed = config_changes(before, to_dict(config))
        if fixed:
            origin = origin_of(config)
            listed = "; ".join(f"{key}: {old!r} -> {new!r} ({origin.where(key)})" for key, (old, new) in fixed.items())
            raise OutputDirError(
                f"cannot resume {folder} with a changed config: {listed}. These keys define the run and must equal the "
                "checkpoint's (keys that may change on resume are marked in `mmpost validate --explain`); start a new "
                "run instead (another train.output_dir, or train.overwrite_output_dir=true without train.resume)",
                key=next(iter(fixed)))
    step = int(state.get("step", 0))
    if config.train.steps <= step:
        raise OutputDirError(f"train.steps={config.train.steps}: the checkpoint {folder} is already at step {step}; "
                             "set train.steps above it to train further", key="train.steps")
    return RunStart(output_dir, str(state.get("run_id") or new_run_id()), resume_from=folder, changes=changes)


def apply_resumed_settings(optimizer, scheduler, config: Config, changes: dict[str, tuple], state: dict, first_step: int) -> None:
    """Make changed optimizer settings take effect after the checkpoint's optimizer/scheduler state was loaded (that
    state holds the old values), and record every change in the trainer state. Steps, cadence and evaluation keys
    are read from the config at each use, so they take effect by themselves."""
    if not changes:
        return
    optim = config.optim
    if any(key.startswith("optim.") for key in changes):
        lambdas = getattr(scheduler, "lr_lambdas", None)
        scheduler.base_lrs = [optim.lr for _ in optimizer.param_groups]
        for index, group in enumerate(optimizer.param_groups):
            group["initial_lr"] = optim.lr
            group.update(weight_decay=optim.weight_decay, betas=tuple(optim.betas), eps=optim.eps)
            if lambdas is not None:  # LambdaLR (every transformers schedule): lr = base * lambda(step)
                group["lr"] = optim.lr * lambdas[index](scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    for key, (old, new) in changes.items():
        log.warning("resume: %s changed from %r to %r; in effect from step %d", key, old, new, first_step)
    state.setdefault("config_changes", []).append(
        {"step": first_step, "changes": {key: [old, new] for key, (old, new) in changes.items()}})


def last_checkpoint_text(output_dir: Path) -> str:
    latest = checkpoint_root(output_dir) / "latest"
    if latest.is_file():
        return f"the last checkpoint is checkpoints/{latest.read_text().strip()} (continue with train.resume=auto)"
    return "no checkpoint was written yet"


# -- the run's log file ----------------------------------------------------------------------------
@contextlib.contextmanager
def run_log(output_dir: Path, rank: int) -> Iterator[Path]:
    """Append mmpost's log records (and, on failure, the traceback) to `<output_dir>/train.log` while the run lasts."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / (LOG_NAME if rank == 0 else f"train_rank{rank}.log")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("mmpost")
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


def append_to_log(path: Path, text: str) -> None:
    """A line in the run log only (the console gets the command's own one-line message)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def log_failure(path: Path, error: BaseException) -> None:
    """Append the full traceback of `error` to the run log; a runtime failure (not a usage, config or data error,
    whose message says it all) gets a note saying where."""
    from mmpost.errors import EXIT_USAGE, exit_code

    append_to_log(path, "run failed:\n" + "".join(traceback.format_exception(error)).rstrip())
    if exit_code(error) != EXIT_USAGE:
        error.add_note(f"full traceback: {path}")
