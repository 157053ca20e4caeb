"""Dataset rows from JSONL files or `datasets.save_to_disk` folders, and a resumable prompt sampler.

JSONL files are indexed by byte offset and parsed on access, so a large file costs one pass and a list of
offsets, not its parsed rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mmpost.types import DataError


class JsonlRows(Sequence[dict]):
    """Rows of a JSONL file, checked once on open and parsed on access.

    Every row gets `_root` (the file's folder, for relative media paths) and `_source` ("file:line").
    """

    def __init__(self, path: str | Path, *, required: Sequence[str] = (), skip_bad_rows: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: data file not found")
        self.required = tuple(required)
        self.skipped: list[str] = []
        self._offsets: list[tuple[int, int]] = []  # (byte offset, line number)
        with self.path.open("rb") as handle:
            offset = 0
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    problem = self._problem(line, line_number)
                    if problem is None:
                        self._offsets.append((offset, line_number))
                    elif skip_bad_rows:
                        self.skipped.append(problem)
                    else:
                        raise DataError(problem)
                offset += len(line)
        if not self._offsets:
            detail = f" ({len(self.skipped)} bad rows skipped; first: {self.skipped[0]})" if self.skipped else ""
            raise DataError(f"{self.path}: the dataset is empty{detail}")

    def _problem(self, line: bytes, line_number: int) -> str | None:
        where = f"{self.path}:{line_number}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            return f"{where}: not UTF-8 text (byte 0x{line[error.start]:02x} at column {error.start + 1}); re-encode the file as UTF-8"
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            return f"{where}: not valid JSON ({error.msg} at column {error.colno})"
        if not isinstance(row, dict):
            return f"{where}: a row must be a JSON object, got {type(row).__name__}"
        missing = [k for k in self.required if row.get(k) is None]
        if missing:
            row_id = row.get("id", "?")
            return f"{where} (id {row_id!r}): missing required field(s) {missing}"
        return None

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        offset, line_number = self._offsets[index]
        with self.path.open("rb") as handle:
            handle.seek(offset)
            row = json.loads(handle.readline())
        row["_root"] = str(self.path.parent)
        row["_source"] = f"{self.path}:{line_number}"
        return row


class ArrowRows(Sequence[dict]):
    """Rows of a `datasets.Dataset.save_to_disk` folder (memory-mapped Arrow)."""

    def __init__(self, path: str | Path, *, required: Sequence[str] = (), skip_bad_rows: bool = False) -> None:
        import datasets

        self.path = Path(path)
        try:
            dataset = datasets.load_from_disk(str(self.path))
        except (FileNotFoundError, ValueError) as error:
            raise DataError(f"{self.path}: not a dataset saved with save_to_disk ({error})") from None
        if isinstance(dataset, datasets.DatasetDict):
            raise DataError(f"{self.path}: holds a DatasetDict {list(dataset)}; point to one split's folder")
        missing = [k for k in required if k not in dataset.column_names]
        if missing:
            raise DataError(f"{self.path}: missing required column(s) {missing}; columns are {dataset.column_names}")
        self.skipped: list[str] = []
        self._dataset = dataset
        self._indices = list(range(len(dataset)))
        if required:
            columns = dataset.select_columns(list(required))
            bad = [i for i, row in enumerate(columns) if any(row[k] is None for k in required)]
            if bad and not skip_bad_rows:
                raise DataError(f"{self.path}: row {bad[0]} has an empty required field (of {list(required)})")
            self.skipped = [f"{self.path}: row {i}" for i in bad]
            self._indices = [i for i in self._indices if i not in set(bad)]
        if not self._indices:
            raise DataError(f"{self.path}: the dataset is empty")

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = self._indices[index]
        row = dict(self._dataset[position])
        row["_root"] = str(self.path)
        row["_source"] = f"{self.path}: row {position}"
        return row


def load_rows(path: str | Path, *, required: Sequence[str] = (), skip_bad_rows: bool = False) -> Sequence[dict]:
    """Open a `.jsonl` file or a `save_to_disk` folder; rows are checked for `required` fields."""
    path = Path(path)
    if path.is_dir():
        return ArrowRows(path, required=required, skip_bad_rows=skip_bad_rows)
    if path.suffix not in (".jsonl", ".json"):
        raise DataError(f"{path}: expected a .jsonl file or a folder written by datasets.save_to_disk")
    return JsonlRows(path, required=required, skip_bad_rows=skip_bad_rows)


class PromptSampler:
    """Endless batches of row indices: a seeded permutation per epoch, with a resumable position.

    The state is two integers, so a resumed run draws exactly the prompts the uninterrupted run would.
    """

    def __init__(self, num_rows: int, batch_size: int, *, seed: int, shuffle: bool = True) -> None:
        if num_rows <= 0:
            raise DataError("the training dataset is empty")
        self.num_rows, self.batch_size, self.seed, self.shuffle = num_rows, batch_size, seed, shuffle
        self.epoch = 0
        self.position = 0

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_rows)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)

    def next_batch(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.batch_size:
            order = self._order(self.epoch)
            take = order[self.position : self.position + self.batch_size - len(batch)]
            batch.extend(int(i) for i in take)
            self.position += len(take)
            if self.position >= self.num_rows:
                self.epoch, self.position = self.epoch + 1, 0
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield self.next_batch()
