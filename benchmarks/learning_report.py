"""The learning report every learning benchmark uses: runs seeds as parallel processes, reads each run's summary and
metrics, and reports per recipe the 3-seed mean ± std, the per-seed values, the standard error of the mean gain and
whether the gain is at least 2 standard errors, with one figure per recipe (reward curve: mean and per-seed spread;
held-out before/after per seed; pass@1 greedy / sampled / pass@k before and after).

    from learning_report import Job, run_jobs, Row, write_report

    jobs = [Job(key=("grpo", seed), recipe="grpo", overrides=[f"train.seed={seed}", ...], output_dir=...) for seed in seeds]
    runs = run_jobs(jobs, parallel=2)               # {key: SeedRun}, finished runs are read back, not rerun
    rows = [Row("GRPO", "grpo", [runs[("grpo", s)] for s in seeds], metric="held-out accuracy")]
    write_report(rows, "learning", title="...")     # benchmarks/results/learning.{md,json}, learning_<recipe>.png

A run that is not an `mmpost train` (a TRL control, a custom loop) builds its `SeedRun` itself.
"""
from __future__ import annotations

import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Per-step metrics summarised over a run (first and last window) in the report's diagnosis columns.
DIAGNOSTIC_KEYS = ("reward/mean", "diag/entropy", "diag/kl_to_start", "diag/zero_variance_group_fraction",
                   "loss/clip_fraction", "diag/truth_accuracy")


# -- statistics (pure) -----------------------------------------------------------------------------
def add_run_arguments(parser, name: str) -> None:
    """The options every learning benchmark takes: seeds, parallel processes, recipe overrides, run and results folders."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2, help="seeds run as this many processes (1 thread each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / name)
    parser.add_argument("--results", type=Path, default=RESULTS)


def ensure_zoo_model(folder: Path, zoo: str) -> None:
    """Build the cached zoo model once (as a recipe run would: stamped with its builder's version) before the seeds
    start: parallel first builds would race. The module registering `zoo` must be imported first."""
    from mmpost.config import ModelConfig
    from mmpost.model import ensure_model_folder

    ensure_model_folder(ModelConfig(path=str(folder), zoo=zoo))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def gain_statistics(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """Per-seed gains (after - before), their mean, std, the standard error of the mean gain (std / sqrt(n)) and
    whether the mean gain is at least 2 standard errors (and positive). With n = 3 seeds, SE = std / 1.732."""
    gains = [a - b for a, b in zip(after, before, strict=True)]
    mean, std = mean_std(gains)
    if len(gains) < 2:  # one seed has no spread: its SE is unknown, not 0, and no gain is significant
        return {"gains": gains, "gain_mean": mean, "gain_std": float("nan"), "gain_se": float("nan"),
                "gain_over_se": float("nan"), "significant": False}
    se = std / math.sqrt(len(gains))
    return {"gains": gains, "gain_mean": mean, "gain_std": std, "gain_se": se,
            "gain_over_se": (mean / se) if se > 0 else (math.inf if mean > 0 else 0.0),
            "significant": bool(mean > 0 and mean >= 2 * se)}


def gap_closed(before: Sequence[float], after: Sequence[float], pass_at_k_before: Sequence[float]) -> list[float]:
    """Per seed, the share of the warm start's pass@k − pass@1 gap that the greedy gain closes:
    (after − before) / (pass@k before − before); NaN where the warm start has no gap (issue #12's "closes half")."""
    return [(a - b) / (p - b) if p > b else float("nan") for b, a, p in zip(before, after, pass_at_k_before, strict=True)]


def window_mean(values: Sequence[float | None], window: int, *, last: bool) -> float | None:
    """Mean of the first (or last) `window` logged values."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    window = max(1, min(window, len(present)))
    return statistics.mean(present[-window:] if last else present[:window])


# -- the evaluation before training, once per warm start -----------------------------------------------
# The held-out evaluation before training (greedy accuracy, then k samples per prompt) depends on the warm start, the
# held-out rows, the settings that decode and score them, the code and the seed (the sampling pass seeds itself from
# train.seed), not on the method: the shapes warm start was evaluated 15 times for 5 methods × 3 seeds. A job with
# `reuse_before` (benchmarks/learning_job.py) looks its "before" numbers up under a key of all of these and computes
# them only on a miss. Every config field is in the key except these, which act only during or after training (a
# new field is keyed by default, so it can never be reused stale):
NOT_IN_BEFORE = ("algorithm", "optim", "train.steps", "train.output_dir", "train.save_every", "train.keep_checkpoints",
                 "train.progress", "train.run_name", "train.overwrite_output_dir", "train.resume", "train.report_to",
                 "train.stop_after", "eval.every_n_steps", "eval.diagnostics_every", "eval.kl_to_start",
                 "eval.benchmarks", "eval.benchmark_data", "eval.benchmark_limit", "eval.score_args",
                 "model.path", "model.zoo")  # the warm start is keyed by its folder's content instead
# The engine code that evaluates, and the task and modality code that makes the rows, decodes their media and scores
# them (installed as mmpost.tasks / mmpost.modalities from these top-level folders: setup.py).
CODE_FOLDERS = ("mmpost", "modalities", "tasks")


def _update_digest(digest, value: Any) -> None:
    """Feed `value` into a hash by content: mappings, sequences, text, numbers, bytes, arrays, tensors and images;
    anything else is an error (a key built from an object's repr could match a different object)."""
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        digest.update(json.dumps(value).encode() + b";")
    elif isinstance(value, bytes):
        digest.update(b"b%d:" % len(value) + value)
    elif isinstance(value, dict):
        digest.update(b"{%d" % len(value))
        for key in sorted(value, key=str):
            _update_digest(digest, str(key))
            _update_digest(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[%d" % len(value))
        for item in value:
            _update_digest(digest, item)
        digest.update(b"]")
    elif isinstance(value, Path):
        _update_digest(digest, ["path", str(value), value.read_bytes() if value.is_file() else None])
    elif isinstance(value, np.ndarray):
        _update_digest(digest, ["array", str(value.dtype), list(value.shape), np.ascontiguousarray(value).tobytes()])
    elif type(value).__module__.startswith("torch"):
        _update_digest(digest, value.detach().cpu().numpy())
    elif hasattr(value, "tobytes") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        _update_digest(digest, ["image", value.mode, list(value.size), value.tobytes()])
    else:
        raise TypeError(f"cannot key the held-out evaluation on a {type(value).__name__}")


def content_digest(value: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    _update_digest(digest, value)
    return digest.hexdigest()


def folder_digest(folder: Path) -> str:
    """Every file under `folder` (relative name and bytes): a rebuilt or retrained warm start gets a new digest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: warm-start folder not found")
    return content_digest([[str(p.relative_to(folder)), p.read_bytes()] for p in sorted(folder.rglob("*")) if p.is_file()])


@functools.lru_cache(maxsize=None)
def code_digest(root: Path = REPO) -> str:
    """The source files of CODE_FOLDERS (read once per process: the code does not change during a run)."""
    return content_digest([[str(p.relative_to(root)), p.read_bytes()] for folder in CODE_FOLDERS
                           for p in sorted((root / folder).rglob("*.py"))])


def before_key_fields(config, heldout_rows: Sequence[Any], accuracy_reward: Any) -> dict[str, Any]:
    """What the evaluation before training depends on (see NOT_IN_BEFORE): the config without the training-only
    fields, with only the task's accuracy reward of the reward list (the one held-out scoring uses), the warm start's
    folder content, the held-out rows' content, the code and the library versions."""
    import torch
    import transformers

    from mmpost.config import to_dict

    settings = to_dict(config)
    for dotted in NOT_IN_BEFORE:
        *parents, leaf = dotted.split(".")
        section = settings
        for parent in parents:
            section = section.get(parent, {})
        section.pop(leaf, None)
    settings.pop("rewards", None)
    return {"settings": settings, "accuracy_reward": accuracy_reward, "warm_start": folder_digest(Path(config.model.path)),
            "heldout_rows": content_digest(list(heldout_rows)), "code": code_digest(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


def cached_before(cache_dir: Path, fields: dict[str, Any], compute) -> tuple[dict[str, float], bool]:
    """The "before" numbers stored under the key of `fields`, or `compute()` stored there (atomically: two seeds
    that miss at once both write the same numbers). A stored entry is used only if its recorded fields equal these.
    Returns (numbers, whether they were reused)."""
    key = content_digest(fields)
    path = Path(cache_dir) / f"{key}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("fields") == json.loads(json.dumps(fields)):
            return stored["before"], True
    before = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"key": key, "fields": fields, "before": before}, indent=1))
    os.replace(partial, path)
    return before, False


# -- runs ----------------------------------------------------------------------------------------------
@dataclass
class SeedRun:
    """What the report needs from one seed's run."""

    seed: int
    before: float
    after: float
    seconds: float = float("nan")
    seconds_per_step: float | None = None
    cpu_seconds: float | None = None  # the process's user + system CPU seconds (1 torch thread), where recorded
    summary: dict = field(default_factory=dict)  # heldout_pass_at_k_before, ... as in summary.json
    curves: dict[str, list[float | None]] = field(default_factory=dict)  # metric -> per-step values

    @classmethod
    def from_run_dir(cls, run_dir: Path, seed: int, seconds: float | None = None) -> "SeedRun":
        summary = json.loads((run_dir / "summary.json").read_text())
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        keys = sorted({k for r in records for k in r if k.startswith(("reward/", "diag/", "loss/", "rollout/", "env/"))})
        return cls(seed=seed, before=summary["heldout_accuracy_before"], after=summary["heldout_accuracy_after"],
                   seconds=seconds if seconds is not None else summary.get("seconds", float("nan")),
                   seconds_per_step=summary.get("seconds_per_step"), summary=summary,
                   curves={k: [r.get(k) for r in records] for k in keys})


@dataclass
class Job:
    """One `mmpost train RECIPE overrides...` run in its own process."""

    key: Any
    recipe: str
    overrides: list[str]
    output_dir: Path
    seed: int = 0
    threads: int = 1
    steps: int | None = None  # a finished run with this many steps is read back instead of rerun
    command: list[str] | None = None  # another program that writes summary.json + metrics.jsonl (a TRL control)
    # Look the held-out evaluation before training up (benchmarks/learning_job.py) instead of recomputing it when
    # another run evaluated the same warm start with the same settings and seed; the numbers are the same.
    reuse_before: bool = False

    def build_command(self) -> list[str]:
        if self.command is not None:
            return list(self.command)
        runner = ([str(REPO / "benchmarks" / "learning_job.py")] if self.reuse_before else ["-m", "mmpost.cli", "train"])
        command = [sys.executable, *runner, str(REPO / "recipes" / f"{self.recipe}.yaml"),
                   *self.overrides, f"train.seed={self.seed}", f"train.output_dir={self.output_dir}",
                   f"train.threads={self.threads}", "train.progress=false",
                   "train.overwrite_output_dir=true"]  # only unfinished runs are run: their partial output goes
        if self.steps is not None:
            command.append(f"train.steps={self.steps}")
        return command

    def fingerprint(self) -> str:
        """The command and the recipe's text: a finished run is reused only if neither changed."""
        import hashlib

        recipe = REPO / "recipes" / f"{self.recipe}.yaml"
        text = recipe.read_text() if recipe.is_file() else ""
        return hashlib.sha256(json.dumps([self.build_command()[1:], text]).encode()).hexdigest()[:16]

    def finished(self) -> bool:
        summary, stamp = self.output_dir / "summary.json", self.output_dir / "job.json"
        if not summary.is_file() or not stamp.is_file():
            return False
        if json.loads(stamp.read_text()).get("fingerprint") != self.fingerprint():
            return False
        return self.steps is None or json.loads(summary.read_text()).get("steps") == self.steps


def run_jobs(jobs: Sequence[Job], *, parallel: int = 2, log_dir: Path | None = None) -> dict[Any, SeedRun]:
    """Run `jobs` as `python -m mmpost.cli train` processes (or their own `command`), `parallel` at a time (each with `threads` torch threads);
    a job whose run directory already holds a finished summary is read back. A failed job stops the benchmark and
    names its log."""
    pending = [j for j in jobs if not j.finished()]
    running: list[tuple[Job, subprocess.Popen, float, Path]] = []
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            job.output_dir.mkdir(parents=True, exist_ok=True)
            log = (log_dir or job.output_dir) / f"{job.output_dir.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            command = job.build_command()
            (job.output_dir / "summary.json").unlink(missing_ok=True)
            handle = log.open("w")
            process = subprocess.Popen(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                       env={**env, "OMP_NUM_THREADS": str(job.threads)})
            running.append((job, process, time.perf_counter(), log))
        time.sleep(0.5)
        for entry in list(running):
            job, process, started, log = entry
            # wait4, not poll: the finished process's own CPU seconds (user + system) come with its exit status.
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == 0:
                continue
            process.returncode = os.waitstatus_to_exitcode(status)
            cpu_seconds = usage.ru_utime + usage.ru_stime
            running.remove(entry)
            if process.returncode != 0:
                for other in running:
                    other[1].terminate()
                tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
                raise RuntimeError(f"{job.recipe} {job.key} failed (exit {process.returncode}); log {log}:\n{tail}")
            seconds = time.perf_counter() - started
            (job.output_dir / "wall_seconds.json").write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds}))
            (job.output_dir / "job.json").write_text(json.dumps({"fingerprint": job.fingerprint(), "command": job.build_command()}))
            print(f"  done {job.key} in {seconds:.0f} s ({cpu_seconds:.0f} CPU s)", flush=True)
    out = {}
    for job in jobs:
        wall = job.output_dir / "wall_seconds.json"
        timing = json.loads(wall.read_text()) if wall.is_file() else {}
        out[job.key] = SeedRun.from_run_dir(job.output_dir, job.seed, timing.get("seconds"))
        out[job.key].cpu_seconds = timing.get("cpu_seconds")
    return out


# -- the report ------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One method on one task: its seeds' runs and how to name it."""

    label: str
    slug: str  # file-name part of its figure: learning_<slug>.png
    runs: list[SeedRun]
    metric: str = "held-out accuracy"
    task: str = ""
    warm_start: str = ""
    steps: int | None = None
    note: str = ""

    def statistics(self) -> dict[str, Any]:
        before = [r.before for r in self.runs]
        after = [r.after for r in self.runs]
        out = {"label": self.label, "metric": self.metric, "task": self.task, "warm_start": self.warm_start,
               "steps": self.steps, "seeds": [r.seed for r in self.runs], "before": before, "after": after,
               **gain_statistics(before, after)}
        for name in ("sampled_accuracy", "pass_at_k", "majority_accuracy"):
            for when in ("before", "after"):
                values = [r.summary.get(f"heldout_{name}_{when}") for r in self.runs]
                if all(v is not None for v in values) and values:
                    out[f"{name}_{when}"] = values
        k = {r.summary.get("heldout_pass_k_before") for r in self.runs} - {None}
        if k:
            out["pass_k"] = int(next(iter(k)))
        out["diagnostics"] = {}
        for key in DIAGNOSTIC_KEYS:
            first = [window_mean(r.curves.get(key, []), 10, last=False) for r in self.runs]
            last = [window_mean(r.curves.get(key, []), 10, last=True) for r in self.runs]
            if all(v is not None for v in first + last):
                out["diagnostics"][key] = {"first10": first, "last10": last}
        out["seconds_per_step"] = mean_std([r.seconds_per_step for r in self.runs if r.seconds_per_step is not None])[0]
        out["note"] = self.note
        return out


def _fmt(values: Sequence[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.3f} ± {std:.3f}"


def _seeds(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def markdown_table(rows: Sequence[Row], *, title: str = "") -> str:
    """The main table: before, after, gain (mean ± std), per-seed gains, SE, gain/SE, pass@k headroom."""
    lines = [title, ""] if title else []
    lines += ["| method | task | before | after | gain | per-seed gain | SE | gain ≥ 2 SE | sampled acc. before → after | "
              "pass@k before → after | s/step |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s = row.statistics()
        sampled = (f"{mean_std(s['sampled_accuracy_before'])[0]:.3f} → {mean_std(s['sampled_accuracy_after'])[0]:.3f}"
                   if "sampled_accuracy_before" in s else "-")
        passk = (f"{mean_std(s['pass_at_k_before'])[0]:.3f} → {mean_std(s['pass_at_k_after'])[0]:.3f} (k={s.get('pass_k')})"
                 if "pass_at_k_before" in s else "-")
        verdict = "yes" if s["significant"] else ("n/a, 1 seed" if len(s["gains"]) < 2 else "no")
        lines.append(f"| {row.label} | {row.task} | {_fmt(s['before'])} | {_fmt(s['after'])} | {s['gain_mean']:+.3f} ± "
                     f"{s['gain_std']:.3f} | {_seeds(s['gains'])} | {s['gain_se']:.3f} | {verdict} "
                     f"({s['gain_over_se']:.1f} SE) | {sampled} | {passk} | {s['seconds_per_step'] or float('nan'):.2f} |")
    return "\n".join(lines)


def diagnosis_table(rows: Sequence[Row]) -> str:
    """Per method, the first and last 10 steps (mean over seeds) of reward, entropy, KL to start, flat groups, clip."""
    names = {"reward/mean": "reward", "diag/entropy": "entropy", "diag/kl_to_start": "KL to start",
             "diag/zero_variance_group_fraction": "flat groups", "loss/clip_fraction": "clip frac.",
             "diag/truth_accuracy": "truth acc."}
    keys = [k for k in DIAGNOSTIC_KEYS if any(k in r.statistics()["diagnostics"] for r in rows)]
    lines = ["| method | " + " | ".join(f"{names[k]} (first 10 → last 10)" for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for row in rows:
        diag = row.statistics()["diagnostics"]
        cells = []
        for key in keys:
            if key in diag:
                cells.append(f"{statistics.mean(diag[key]['first10']):.3f} → {statistics.mean(diag[key]['last10']):.3f}")
            else:
                cells.append("-")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def question_kinds(row: Row) -> list[str]:
    """The question kinds every seed's summary reports greedy accuracy for (heldout_accuracy_<kind>_before)."""
    found = [{k[len("heldout_accuracy_"):-len("_before")] for k in r.summary if k.startswith("heldout_accuracy_")
              and k.endswith("_before") and k != "heldout_accuracy_before"} for r in row.runs]
    return sorted(set.intersection(*found)) if found else []


def kinds_table(rows: Sequence[Row]) -> str:
    """Greedy held-out accuracy and pass@k per question kind, before → after (mean over seeds): which kind a gain
    came from (a binary kind the model answers with one constant gains 1 - 2p by flipping it, without seeing more)."""
    lines = ["| method | kind | greedy before → after (per seed after) | pass@k before → after |", "|---|---|---|---|"]
    for row in rows:
        for kind in question_kinds(row):
            before = [r.summary[f"heldout_accuracy_{kind}_before"] for r in row.runs]
            after = [r.summary.get(f"heldout_accuracy_{kind}_after") for r in row.runs]
            if any(v is None for v in after):
                continue
            passk = [(r.summary.get(f"heldout_pass_at_k_{kind}_before"), r.summary.get(f"heldout_pass_at_k_{kind}_after"))
                     for r in row.runs]
            passk_text = (f"{statistics.mean(b for b, _ in passk):.3f} → {statistics.mean(a for _, a in passk):.3f}"
                          if all(b is not None and a is not None for b, a in passk) else "-")
            lines.append(f"| {row.label} | {kind} | {statistics.mean(before):.3f} → {statistics.mean(after):.3f} "
                         f"({_seeds(after)}) | {passk_text} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot_row(row: Row, path: Path, *, curve_key: str = "reward/mean", compare: Sequence[Row] = ()) -> None:
    """One figure: reward curve (mean and per-seed min-max band, several rows overlaid when `compare` is given),
    held-out before/after per seed, and greedy / sampled / pass@k before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row, *compare]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for index, current in enumerate(rows):
        colour = colours[index % len(colours)]
        curves = [r.curves.get(curve_key, []) for r in current.runs]
        length = min((len(c) for c in curves), default=0)
        if length:
            import numpy as np

            values = np.array([[np.nan if v is None else v for v in c[:length]] for c in curves], dtype=float)
            window = max(1, length // 20)
            kernel = np.ones(window) / window
            smooth = np.array([np.convolve(v, kernel, mode="valid") for v in values])
            steps = np.arange(1, smooth.shape[1] + 1) + (window - 1)
            axes[0].plot(steps, np.nanmean(smooth, 0), color=colour, label=f"{current.label} (mean of {len(curves)})")
            axes[0].fill_between(steps, np.nanmin(smooth, 0), np.nanmax(smooth, 0), color=colour, alpha=0.2)
        s = current.statistics()
        offset = index * 0.12
        for seed_index, (b, a) in enumerate(zip(s["before"], s["after"])):
            axes[1].plot([0 + offset, 1 + offset], [b, a], color=colour, marker="o", alpha=0.7,
                         label=current.label if seed_index == 0 else None)
        bars = [("greedy", s["before"], s["after"])]
        if "sampled_accuracy_before" in s:
            bars.append(("sampled", s["sampled_accuracy_before"], s["sampled_accuracy_after"]))
        if "pass_at_k_before" in s:
            bars.append((f"pass@{s.get('pass_k', 'k')}", s["pass_at_k_before"], s["pass_at_k_after"]))
        for bar_index, (name, before, after) in enumerate(bars):
            x = bar_index * (len(rows) * 2 + 1) + index * 2
            for shift, values, hatch in ((0, before, ""), (1, after, "//")):
                mean, std = mean_std(values)
                axes[2].bar(x + shift, mean, yerr=std, color=colour, alpha=0.5 if shift == 0 else 0.9, hatch=hatch,
                            label=(f"{current.label} {'before' if shift == 0 else 'after'}" if bar_index == 0 else None))
            if index == 0:
                axes[2].text(x + len(rows) - 0.5, -0.08, name, ha="center", transform=axes[2].get_xaxis_transform())
    axes[0].set_title(f"training {curve_key} (smoothed; band = seed min-max)")
    axes[0].set_xlabel("step")
    axes[1].set_xticks([0, 1], ["before", "after"])
    axes[1].set_title(f"{row.metric}, per seed")
    axes[2].set_xticks([])
    axes[2].set_title("held-out: greedy, sampled, pass@k (mean ± std)")
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle(f"{row.label}" + (f" vs {', '.join(r.label for r in compare)}" if compare else "")
                    + (f" on {row.task}" if row.task else ""))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def figure_name(name: str, slug: str, default_name: str | None = None) -> str:
    """A row's figure: learning_<slug>.png in the suite's own report (`name` is the script's default report name, or
    the script gives none), <name>_<slug>.png in any other report, so that a report of some groups or of a variant
    never replaces the figure the suite's report points to."""
    return f"learning_{slug}.png" if default_name is None or name == default_name else f"{name}_{slug}.png"


def write_results(name: str, text: str, payload: Any, results: Path = RESULTS) -> None:
    """A diagnosis script's report without learning rows: <name>.md (`text`) and <name>.json (`payload`)."""
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.md").write_text(text + "\n")
    (results / f"{name}.json").write_text(json.dumps(payload, indent=1, default=float))


def write_report(rows: Sequence[Row], name: str, *, title: str = "", results: Path = RESULTS, text: str = "",
                 figures: bool = True, extra: dict | None = None, default_name: str | None = None) -> str:
    """benchmarks/results/<name>.md (tables and `text`), <name>.json (every number), a figure per row (`figure_name`:
    pass the script's default report name as `default_name` when `name` can be chosen on its command line)."""
    results.mkdir(parents=True, exist_ok=True)
    body = markdown_table(rows, title=title) + "\n\nDiagnostics (mean over seeds):\n\n" + diagnosis_table(rows)
    kinds = kinds_table(rows)
    if kinds:
        body += "\n\nBy question kind (held-out, greedy; mean over seeds):\n\n" + kinds
    if text:
        body += "\n\n" + text
    (results / f"{name}.md").write_text(body + "\n")
    payload = {"rows": [row.statistics() for row in rows],
               "runs": {row.label: [asdict(r) for r in row.runs] for row in rows}, **(extra or {})}
    (results / f"{name}.json").write_text(json.dumps(payload, indent=1, default=float))
    if figures:
        for row in rows:
            plot_row(row, results / figure_name(name, row.slug, default_name))
    return body
