"""Benchmarks from where users keep them: the published dataset, read with `datasets`, written once into the
benchmark's official local layout, then read by the same loader as `--data DIR`.

    mmpost eval --model M --benchmark mathvista              # AI4Math/MathVista, split testmini, from the hub
    mmpost eval --model M --benchmark mathvista --data DIR   # offline: the official files, or a local copy of
                                                             # the published dataset (parquet/arrow files, a
                                                             # `save_to_disk` folder, a `huggingface-cli download`)

`datasets` caches what it downloads (HF_DATASETS_CACHE); the converted folder is cached under
`$MMPOST_CACHE/benchmarks` (default `~/.cache/mmpost/benchmarks`), keyed by benchmark, source and split, and written
atomically, so a second run reads neither the network nor the parquet again. Offline (no network, or
HF_HUB_OFFLINE=1), a hub id works only once `datasets` has it cached; otherwise the error says to pass `--data`.

| benchmark | published dataset (config) split | what the conversion writes |
|---|---|---|
| mathvista | `AI4Math/MathVista` testmini | `testmini.json` {pid: problem} + `images/<pid>.png` from `decoded_image`; `precision` back to int as in the GitHub JSON |
| mathverse | `AI4Math/MathVerse` (testmini) testmini | `testmini.json` rows + `images/<sample_index>.png` from `image` |
| wemath | `We-Math/We-Math` testmini | `testmini.json` rows + `images/<row>.png` from `image_path` |
| screenspot | `rootsautomation/ScreenSpot` test | `screenspot_{mobile,desktop,web}.json` (SeeClick's pixel [x, y, w, h], `img_size`) + `images/<file_name>`; the published `bbox` is normalised [x1, y1, x2, y2] (lmms-eval reads it so), checked |
| refcoco | `lmms-lab/RefCOCO` val (or testA, testB, test: `--split refcoco=testA`) | `refcoco.json` rows with `width`/`height` + `images/<question_id>.png` |

Not published as `datasets` tables, so `--data` stays needed: Video-MME and MVBench (videos in zip archives),
DriveLM (nuScenes images under their own licence), MMAU (audio; its published copies differ in layout: give the
official `mmau-test-mini.json` and audio folder).
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from mmpost.eval.common import BenchmarkDataError

log = logging.getLogger(__name__)

OFFLINE_HINT = ("offline? pass --data DIR with the benchmark's official files or a local copy of its published dataset "
                "(parquet/arrow files or a save_to_disk folder); a hub id also works offline once datasets has it cached")


@dataclass(frozen=True)
class PublishedDataset:
    """Where a benchmark is published and how its rows become the official local layout."""

    benchmark: str
    dataset_id: str
    split: str
    write: Callable[[Iterable[dict], Path], int]  # rows -> files in the folder; returns the number of items
    columns: tuple[str, ...]  # the published columns the conversion reads
    config: str | None = None


def _save_image(image: Any, folder: Path, stem: str) -> str:
    """A decoded `Image` column value (PIL), or an undecoded {"bytes", "path"} record, as `images/<stem>.<ext>`;
    returns the path relative to `folder`."""
    from PIL import Image

    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"])) if image.get("bytes") else Image.open(image["path"])
    if not isinstance(image, Image.Image):
        raise BenchmarkDataError(f"expected an image, got {type(image).__name__}")
    name = f"images/{re.sub(r'[^A-Za-z0-9._-]', '_', stem)}.png"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    image.save(folder / name, format="PNG")
    return name


def _plain(value: Any) -> Any:
    """Arrow/numpy scalars and nested rows as JSON-ready Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def write_mathvista(rows: Iterable[dict], folder: Path) -> int:
    problems = {}
    for row in rows:
        pid = str(row["pid"])
        problem = {k: _plain(v) for k, v in row.items() if k != "decoded_image"}
        precision = problem.get("precision")
        if isinstance(precision, float) and precision.is_integer():
            problem["precision"] = int(precision)  # float64 on the hub; the GitHub JSON (and round()) want an int
        if row.get("decoded_image") is not None:
            problem["image"] = _save_image(row["decoded_image"], folder, pid)
        problems[pid] = problem
    (folder / "testmini.json").write_text(json.dumps(problems, ensure_ascii=False))
    return len(problems)


def write_mathverse(rows: Iterable[dict], folder: Path) -> int:
    items = []
    for row in rows:
        item = {k: _plain(v) for k, v in row.items() if k != "image"}
        item["image"] = _save_image(row["image"], folder, str(row["sample_index"])) if row.get("image") is not None else ""
        items.append(item)
    (folder / "testmini.json").write_text(json.dumps(items, ensure_ascii=False))
    return len(items)


def write_wemath(rows: Iterable[dict], folder: Path) -> int:
    items = []
    for index, row in enumerate(rows):
        item = {k: _plain(v) for k, v in row.items() if k != "image_path"}
        image = row.get("image_path")
        item["image_path"] = _save_image(image, folder, f"{index}_{row['ID']}") if image is not None else ""
        items.append(item)
    (folder / "testmini.json").write_text(json.dumps(items, ensure_ascii=False))
    return len(items)


def screenspot_platform(data_source: str) -> str:
    """SeeClick's three files by source, as lmms-eval groups them: ios/android -> mobile, macos/windows -> desktop."""
    source = data_source.lower()
    if "ios" in source or "android" in source:
        return "mobile"
    if "macos" in source or "windows" in source:
        return "desktop"
    return "web"


def write_screenspot(rows: Iterable[dict], folder: Path) -> int:
    from mmpost.eval.scorers.screenspot import V1_SPLITS

    files: dict[str, list[dict]] = {platform: [] for platform in V1_SPLITS}
    for index, row in enumerate(rows):
        x1, y1, x2, y2 = (float(v) for v in row["bbox"])
        if max(x1, y1, x2, y2) > 1.0 or x2 < x1 or y2 < y1:
            raise BenchmarkDataError(f"ScreenSpot row {index}: bbox {row['bbox']} is not normalised [x1, y1, x2, y2]; the "
                                     "published layout has changed, so the conversion refuses to guess")
        image = row["image"]
        name = Path(str(row["file_name"])).name
        relative = _save_image(image, folder, Path(name).stem)
        width, height = image.size if hasattr(image, "size") else (None, None)
        files[screenspot_platform(str(row["data_source"]))].append({
            "img_filename": Path(relative).name, "instruction": row["instruction"], "data_type": row["data_type"],
            "data_source": row["data_source"], "img_size": [width, height],
            "bbox": [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height]})
    for platform, filename in V1_SPLITS.items():
        (folder / filename).write_text(json.dumps(files[platform], ensure_ascii=False))
    return sum(len(v) for v in files.values())


def write_refcoco(rows: Iterable[dict], folder: Path) -> int:
    items = []
    for index, row in enumerate(rows):
        item = {k: _plain(v) for k, v in row.items() if k not in ("image", "segmentation")}
        image = row["image"]
        item["file_name"] = _save_image(image, folder, str(row.get("question_id", index)))
        item["width"], item["height"] = image.size
        items.append(item)
    (folder / "refcoco.json").write_text(json.dumps(items, ensure_ascii=False))
    return len(items)


PUBLISHED: dict[str, PublishedDataset] = {spec.benchmark: spec for spec in [
    PublishedDataset("mathvista", "AI4Math/MathVista", "testmini", write_mathvista,
                     ("pid", "question", "decoded_image", "choices", "question_type", "answer_type", "precision", "answer")),
    PublishedDataset("mathverse", "AI4Math/MathVerse", "testmini", write_mathverse,
                     ("sample_index", "problem_version", "question", "image", "answer"), config="testmini"),
    PublishedDataset("wemath", "We-Math/We-Math", "testmini", write_wemath,
                     ("ID", "question", "option", "answer", "key", "image_path")),
    PublishedDataset("screenspot", "rootsautomation/ScreenSpot", "test", write_screenspot,
                     ("file_name", "bbox", "instruction", "data_type", "data_source", "image")),
    PublishedDataset("refcoco", "lmms-lab/RefCOCO", "val", write_refcoco,
                     ("question_id", "image", "answer", "bbox")),
]}


def cache_root() -> Path:
    base = os.environ.get("MMPOST_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mmpost"
    return Path(base) / "benchmarks"


def is_published_copy(path: Path) -> bool:
    """A local copy of a published dataset (parquet/arrow files, a save_to_disk folder), not the official files."""
    if path.is_file():
        return path.suffix in (".parquet", ".arrow")
    if not path.is_dir():
        return False
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return True
    return any(path.rglob("*.parquet")) or any(path.rglob("*.arrow"))


def _read(spec: PublishedDataset, source: str | Path | None, split: str):
    """The published split as a `datasets.Dataset`: from the hub id, or from a local copy."""
    import datasets

    where = str(source) if source is not None else f"{spec.dataset_id} (split {split})"
    try:
        if source is None:
            return datasets.load_dataset(spec.dataset_id, spec.config, split=split)
        path = Path(source)
        if path.is_file():
            return datasets.load_dataset(path.suffix[1:], data_files=str(path), split="train")
        if (path / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(path))[split]
        if (path / "state.json").is_file():
            return datasets.load_from_disk(str(path))
        try:
            return datasets.load_dataset(str(path), spec.config, split=split)
        except ValueError:  # a copy without the hub card's config list
            return datasets.load_dataset(str(path), split=split)
    except BenchmarkDataError:
        raise
    except Exception as error:  # network, missing split, unreadable files: one line naming the source
        raise BenchmarkDataError(f"{spec.benchmark}: could not load {where} with datasets "
                                 f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                                 f"{OFFLINE_HINT}") from None


def published_data_dir(benchmark: str, *, source: str | Path | None = None, split: str | None = None,
                       cache: Path | None = None) -> Path:
    """The official-layout folder of `benchmark`, converted from its published dataset (or `source`, a local copy)
    on first use and cached; `split` overrides the published split (RefCOCO: val, testA, testB, test)."""
    spec = PUBLISHED.get(benchmark)
    if spec is None:
        raise BenchmarkDataError(f"{benchmark}: no published dataset is wired for it (published: {sorted(PUBLISHED)}); "
                                 f"pass --data DIR with its official files")
    origin = str(Path(source).resolve()) if source is not None else spec.dataset_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "__", origin).strip("_")[-120:]
    split = split or spec.split
    folder = (cache or cache_root()) / benchmark / slug / split
    if (folder / ".complete").is_file():
        return folder
    dataset = _read(spec, source, split)
    missing = [c for c in spec.columns if c not in dataset.column_names]
    if missing:
        raise BenchmarkDataError(f"{benchmark}: {origin} lacks the published column(s) {missing} (it has "
                                 f"{dataset.column_names}); is it {spec.dataset_id}?")
    partial = folder.with_name(f"{folder.name}.partial-{uuid.uuid4().hex[:8]}")
    partial.mkdir(parents=True)
    try:
        count = spec.write(dataset, partial)
        (partial / ".complete").write_text(json.dumps({"source": origin, "split": split, "items": count}))
        try:
            partial.rename(folder)
        except OSError:  # another process finished first: keep its folder
            if not (folder / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("%s: %s converted to %s (cached for next time)", benchmark, origin, folder)
    return folder
