"""`mmpost eval score`: score an existing predictions file in a benchmark's official output format.

Writes `results.json` (per benchmark: metrics, counts, breakdowns, scorer mode, package versions)
and `samples_<benchmark>.jsonl` (id, prompt, raw output, extracted answer, target, per-sample score)
into `output`, and prints a short table.
"""
from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mmpost.registry import BENCHMARKS

import mmpost.eval  # noqa: F401  (registers the built-in benchmarks)
from mmpost.errors import UsageError
from mmpost.judge import Judge, JudgeUnavailableError


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("mmpost", "numpy", "torch", "transformers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


def score_command(benchmark: str, predictions: str, data: str | None, output: str | None,
                  mode: str = "official", judge: Judge | None = None, score_args: dict[str, Any] | None = None) -> dict:
    """Score `predictions` (the benchmark's official output file) and write the result files.

    Args:
        benchmark: a name registered in `mmpost.registry.BENCHMARKS` (e.g. "mathvista").
        predictions: path to the predictions file.
        data: benchmark data folder, for formats that need the annotations (DriveLM) or fill gaps.
        output: folder for `results.json` and `samples_<benchmark>.jsonl`; None writes nothing.
        mode: scorer mode ("official" by default; see each scorer's docstring for the others).
        judge: LLM judge for scorers that need one.
        score_args: scorer keywords (`--score-arg screenspot.coords=pixels` gives {"coords": "pixels"}; MathVista takes
            {"missing_extraction": "wrong"}).
    Returns the results dict written to `results.json`. A missing file or folder, an unknown mode, or items that need
    a judge when none is given raise `UsageError` (one line and exit code 2 on the command line), naming the file.
    """
    spec = BENCHMARKS.get(benchmark)
    if mode not in spec.modes:
        raise UsageError(f"{benchmark}: mode '{mode}' not supported; choose one of {list(spec.modes)} (--mode)")
    if not Path(predictions).is_file():
        raise UsageError(f"{predictions}: predictions file not found" if not Path(predictions).exists()
                         else f"{predictions}: not a file (give the predictions file itself)")
    if data is not None and not Path(data).exists():
        raise UsageError(f"{data}: {benchmark} data not found (--data)")
    annotations = spec.load(data) if data else None
    items = spec.load_predictions(predictions, annotations)
    kwargs: dict[str, Any] = {**(score_args or {}), "mode": mode}
    if judge is not None:
        kwargs["judge"] = judge
    try:
        result = spec.score(items, **kwargs)
    except JudgeUnavailableError as error:
        raise UsageError(f"{predictions}: {error}; a judge is given with --judge-endpoint URL --judge-model NAME (its API "
                         "key is read from the environment variable named by --judge-api-key-env, OPENAI_API_KEY by "
                         "default)") from error
    samples = result.pop("samples", [])
    entry = {**result, "predictions_file": str(Path(predictions).resolve()),
             "data": str(Path(data).resolve()) if data else None}
    results = {"results": {benchmark: entry}, "versions": package_versions()}
    if output is not None:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
        with open(folder / f"samples_{benchmark}.jsonl", "w", encoding="utf-8") as handle:
            for sample in samples:
                handle.write(json.dumps(sample, ensure_ascii=False, default=str) + "\n")
    print(f"{benchmark} (mode={mode})")
    for name, value in result["metrics"].items():
        print(f"  {name:<28} {_format_metric(value)}")
    print("  " + "  ".join(f"{key}={value}" for key, value in result["counts"].items()))
    return results
