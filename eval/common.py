"""Shared plumbing for benchmark scorers: file reading with clear errors, breakdown tables, the
`Benchmark` record registered in `mmpost.registry.BENCHMARKS`.

Every scorer returns the same result shape (see `make_result`) so `score_cli` can write
`results.json` and `samples_<benchmark>.jsonl` without knowing the benchmark.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

SCORER_MODES = ("official", "lmms_eval")


class BenchmarkDataError(ValueError):
    """A benchmark file is missing or not in the documented format."""


@dataclass(frozen=True)
class Benchmark:
    """One evaluation benchmark: how to read it, prompt for it, read answers and score them.

    `load(data_dir, limit=None)` -> items; `build_prompt(item)` -> str; `extract(item, output)` ->
    extracted answer; `score(predictions, mode=...)` -> result dict; `load_predictions(path, data)`
    reads the benchmark's official prediction-file format into the list `score` takes.
    """

    name: str
    load: Callable[..., list[dict]]
    build_prompt: Callable[[dict], str]
    extract: Callable[..., Any]
    score: Callable[..., dict]
    load_predictions: Callable[..., list[dict]]
    description: str = ""
    modes: tuple[str, ...] = ("official",)
    # -- what `mmpost eval --model` needs to run the benchmark with a model (see eval/runner.py) --
    modality: str | None = "image"
    """Registered modality whose adapter encodes the prompt ("image", "video", "audio"); None = text only."""
    media: Callable[[dict, Path], dict] | None = None
    """(item, data_dir) -> the sample's media fields, e.g. {"images": [absolute paths]}; None = no media."""
    response_key: str = "response"
    """Key under which `score` expects the model's raw text (MMAU: model_output, MathVerse: model_answer)."""
    item_id: Callable[[dict, int], str] | None = None
    """(item, position) -> a stable id; None = the item's `id`/`pid`/`question_id`, else its position."""
    system_prompt: str | None = None
    assistant_prefix: str = ""
    """Text pre-filled at the start of the assistant turn (MVBench: "Best option:(")."""
    response_prefix: str = ""
    """Prepended to the generated text before scoring (MVBench puts the pre-filled "(" back)."""


def check_mode(mode: str, allowed: Sequence[str], benchmark: str) -> None:
    if mode not in allowed:
        raise ValueError(f"{benchmark}: scorer mode '{mode}' is not supported; choose one of {list(allowed)}")


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"{what}: file not found: {path}")
    return path


def read_json(path: str | Path, what: str) -> Any:
    path = require_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BenchmarkDataError(f"{what}: {path} is not valid JSON ({error})") from error


_TRAILING_COMMA = re.compile(r",(\s*[\]}])")


def read_lenient_json(path: str | Path, what: str) -> Any:
    """JSON that tolerates trailing commas before `]`/`}` (hand-edited official templates have them).

    Commas are only dropped outside string literals, so text such as `"a, ]"` is left intact.
    """
    path = require_file(path, what)
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(_strip_trailing_commas(text))
    except json.JSONDecodeError as error:
        raise BenchmarkDataError(f"{what}: {path} is not valid JSON even allowing trailing commas ({error})") from error


def _strip_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = False
    escaped = False
    index = 0
    while index < len(text):
        char = text[index]
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char == ",":
            lookahead = index + 1
            while lookahead < len(text) and text[lookahead] in " \t\r\n":
                lookahead += 1
            if lookahead < len(text) and text[lookahead] in "]}":
                index += 1
                continue
            out.append(char)
        else:
            out.append(char)
        index += 1
    return "".join(out)


def require_fields(item: Mapping, fields: Iterable[str], where: str) -> None:
    missing = [name for name in fields if name not in item]
    if missing:
        raise BenchmarkDataError(f"{where}: missing field(s) {missing}; present: {sorted(item)}")


def data_file(data_dir: str | Path, *names: str) -> Path:
    """A benchmark's file: `data_dir` itself when it is not a folder, else the first of `names` (paths relative to
    it) that exists; the first name when none does, so the reader's error names the file it expected."""
    path = Path(data_dir)
    if not path.is_dir():
        return path
    candidates = [path / name for name in names]
    return next((c for c in candidates if c.is_file()), candidates[0])


def read_json_rows(path: str | Path, what: str, fields: Iterable[str] = ()) -> list[dict]:
    """A JSON file holding a list of objects, each with `fields` (the shape of most official annotation and
    prediction files). Errors name `what`, the file, the row and the missing fields."""
    rows = read_json(path, what)
    if not isinstance(rows, list):
        raise BenchmarkDataError(f"{what}: {path} must hold a JSON list of rows, got {type(rows).__name__}")
    fields = list(fields)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise BenchmarkDataError(f"{what}: {path} row {index} must be a JSON object, got {type(row).__name__}")
        require_fields(row, fields, f"{what}: {path} row {index}")
    return rows


def accuracy_table(records: Iterable[tuple[Any, bool]]) -> dict[str, dict[str, Any]]:
    """Group (key, correct) pairs into {key: {correct, total, accuracy}} (accuracy in [0, 1]).

    Keys keep first-seen order; list keys (multi-label, e.g. MathVista skills) count once per label.
    """
    table: dict[str, dict[str, Any]] = {}
    for key, correct in records:
        labels = key if isinstance(key, (list, tuple)) else [key]
        for label in labels:
            row = table.setdefault(str(label), {"correct": 0, "total": 0})
            row["correct"] += int(bool(correct))
            row["total"] += 1
    for row in table.values():
        row["accuracy"] = row["correct"] / row["total"] if row["total"] else 0.0
    return table


def make_result(
    benchmark: str,
    mode: str,
    metrics: dict[str, float],
    *,
    total: int,
    answered: int,
    unparseable: int,
    breakdown: dict[str, dict] | None = None,
    samples: list[dict] | None = None,
    notes: list[str] | None = None,
    extra_counts: dict[str, int] | None = None,
) -> dict:
    """The common result shape: metrics, counts, per-category breakdowns, per-sample records."""
    counts = {"total": total, "answered": answered, "unparseable": unparseable}
    counts.update(extra_counts or {})
    return {
        "benchmark": benchmark,
        "mode": mode,
        "metrics": metrics,
        "counts": counts,
        "breakdown": breakdown or {},
        "samples": samples or [],
        "notes": notes or [],
    }


def sample_record(sample_id: Any, prompt: str | None, raw_output: Any, extracted: Any, target: Any, score: float, **extra: Any) -> dict:
    record = {
        "id": sample_id, "prompt": prompt, "raw_output": raw_output,
        "extracted": extracted, "target": target, "score": score,
    }
    record.update(extra)
    return record


def option_letters(count: int) -> list[str]:
    return [chr(ord("A") + index) for index in range(count)]


def levenshtein(first: str, second: str) -> int:
    """Edit distance with unit insert/delete/substitute costs (python-Levenshtein's `distance`)."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for row, char_a in enumerate(first, start=1):
        current = [row]
        for column, char_b in enumerate(second, start=1):
            current.append(min(previous[column] + 1, current[column - 1] + 1, previous[column - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def resolve_media_path(data_dir: str | Path, relative: str, what: str, subfolders: Sequence[str] = ("", "images", "data")) -> str:
    """The absolute path of a media file named in an annotation, looked up under `data_dir` and its
    usual subfolders; raises BenchmarkDataError naming the file and the folders tried."""
    data_dir = Path(data_dir)
    relative = str(relative)
    if relative.startswith("./"):
        relative = relative[2:]
    if Path(relative).is_absolute() and Path(relative).is_file():
        return relative
    tried = []
    for folder in subfolders:
        candidate = data_dir / folder / relative if folder else data_dir / relative
        if candidate.is_file():
            return str(candidate.resolve())
        tried.append(str(candidate.parent))
    raise BenchmarkDataError(f"{what}: media file {relative!r} not found under {tried}")
