"""The data layouts users already have, read through `datasets` and mapped onto the `vqa` task's rows.

Sources (`data.task_args.path` / `heldout_path`): a `.jsonl` file (read line by line, errors name file:line), a
`.json` / `.parquet` / `.arrow` file, a folder of such files, a `save_to_disk` folder (a `Dataset`, or a
`DatasetDict` whose split is picked by `train_split` / `heldout_split`), or a hub dataset id (`org/name`, loaded
with `datasets.load_dataset(id, split=...)` and cached by `datasets`; needs the network the first time).

Layouts (`format: auto` detects them from the columns; `columns` maps any other names):

| format | problem (the question) | answer (what rewards compare, and the SFT target) | images |
|---|---|---|---|
| `mmpost` | `problem` | `answer` | `images` (or `image`) |
| `trl` | `prompt`: a string, or chat messages (content a string or TRL's typed parts) | `solution`, else `answer`, `ground_truth`, `completion` (a string or an assistant message) | `images` or `image` |
| `verl` (RL parquet) | the last user turn of `prompt` (chat messages) | `reward_model.ground_truth` | `images` |
| `llava` / `sharegpt` | the last `human` turn of `conversations` before the answer | the last `gpt` turn | `image` (or `images`) |
| `llama_factory` (and TRL's conversational `messages`) | the last `user` turn of `messages` before the answer | the last `assistant` turn (or `solution`/`answer`, which win when present) | `images` (or `image`) |

In every layout the `<image>` placeholders are removed from the text (the task puts one image placeholder per
image before the question), a `system` turn is kept as `system` (the task's prompt starts with it), `id` is kept
or made from `extra_info.index` or the row number, and the other columns ride along (`data_source`, `ability`,
...). Images may be paths (relative to the data file's folder), bytes, `{"bytes", "path"}` records (how parquet
and `datasets` store an `Image` column undecoded) or PIL images (a decoded `Image` column).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from mmpost.types import DataError

FORMATS = ("auto", "mmpost", "trl", "verl", "llava", "sharegpt", "llama_factory")
TABLE_SUFFIXES = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}
IMAGE_PLACEHOLDER = re.compile(r"<image>\s*")
ANSWER_COLUMNS = ("solution", "answer", "ground_truth", "completion")
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
              "model": "assistant", "bot": "assistant"}


# -- reading ------------------------------------------------------------------------------------------
def load_table(source: str | Path, *, split: str = "train", skip_bad_rows: bool = False) -> tuple[Sequence[dict], str | None]:
    """(rows, media root) of a file, a folder or a hub dataset id; rows are plain dicts, read on access."""
    from mmpost.data import ArrowRows, JsonlRows

    path = Path(source)
    if path.is_file():
        if path.suffix == ".jsonl":
            return JsonlRows(path, skip_bad_rows=skip_bad_rows), str(path.parent)
        builder = TABLE_SUFFIXES.get(path.suffix)
        if builder is None:
            raise DataError(f"{path}: unsupported data file type '{path.suffix}'; expected one of "
                            f"{sorted(TABLE_SUFFIXES)} or a folder")
        return _Table(_load_dataset(builder, str(path), data_files=str(path)), str(path)), str(path.parent)
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():  # save_to_disk
            if (path / "dataset_dict.json").is_file():
                return _Table(_from_disk_split(path, split), f"{path} [{split}]"), str(path)
            return ArrowRows(path), str(path)
        return _Table(_load_dataset(str(path), str(path), split=split), f"{path} [{split}]"), str(path)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(source)) or path.suffix or str(source).startswith("."):
        raise DataError(f"{source}: data file or folder not found (a hub dataset id looks like org/name)")
    return _Table(_load_dataset(str(source), str(source), split=split), f"{source} [{split}]"), None


def _load_dataset(name: str, where: str, *, split: str = "train", data_files: str | None = None):
    import datasets

    try:
        loaded = datasets.load_dataset(name, data_files=data_files, split=split)
    except FileNotFoundError as error:
        raise DataError(f"{where}: not found ({error}); a hub id needs the network the first time "
                        "(then it is cached); offline, give a local file or folder") from None
    except ValueError as error:  # an unknown split, or no data files in a folder
        raise DataError(f"{where}: {error}") from None
    except Exception as error:  # a connection error, an unreadable file: say which source failed
        raise DataError(f"{where}: could not be read by datasets ({type(error).__name__}: {error}); offline, a hub id "
                        "only works once it is cached: give a local file or folder instead") from None
    return loaded


def _from_disk_split(path: Path, split: str):
    import datasets

    dataset = datasets.load_from_disk(str(path))
    if split not in dataset:
        raise DataError(f"{path}: holds splits {list(dataset)}; no split '{split}' (set train_split / heldout_split)")
    return dataset[split]


class _Table(Sequence[dict]):
    """A `datasets.Dataset` as a sequence of dicts, each tagged with its source and row number."""

    def __init__(self, dataset: Any, where: str) -> None:
        if len(dataset) == 0:
            raise DataError(f"{where}: the dataset is empty")
        self.dataset, self.where = dataset, where
        self.column_names = list(dataset.column_names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = dict(self.dataset[index])
        row["_source"] = f"{self.where}: row {index}"
        return row


# -- mapping --------------------------------------------------------------------------------------------
def detect_format(columns: Sequence[str]) -> str:
    """The layout a set of column names describes (see the table in the module docstring)."""
    columns = set(columns)
    if "reward_model" in columns:
        return "verl"
    if "conversations" in columns:
        return "llava"
    if "messages" in columns:
        return "llama_factory"
    if "prompt" in columns:
        return "trl"
    if "problem" in columns:
        return "mmpost"
    raise DataError(f"cannot tell the data layout from the columns {sorted(columns)}: expected problem/answer (mmpost), "
                    "prompt (TRL), prompt + reward_model (verl), conversations (LLaVA/ShareGPT) or messages "
                    "(LLaMA-Factory, TRL conversational); or map yours with task_args.columns={problem: ..., answer: ...}")


def _text(content: Any) -> str:
    """A message's text: a string, or TRL/OpenAI typed parts [{"type": "text", "text": ...}, {"type": "image"}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict) and part.get("type") == "text")
    if content is None:
        return ""
    raise DataError(f"a message content must be a string or a list of typed parts, got {type(content).__name__}")


def _turns(messages: Any, *, role_key: str, text_key: str) -> list[tuple[str, str]]:
    if isinstance(messages, str):
        return [("user", messages)]
    if not isinstance(messages, (list, tuple)):
        raise DataError(f"expected a list of chat messages, got {type(messages).__name__}")
    turns = []
    for message in messages:
        if not isinstance(message, dict):
            raise DataError(f"a chat message must be a mapping, got {type(message).__name__}")
        role = ROLE_NAMES.get(str(message.get(role_key, "")).lower())
        if role is None:
            raise DataError(f"unknown chat role {message.get(role_key)!r} (known: {sorted(ROLE_NAMES)})")
        turns.append((role, _text(message.get(text_key))))
    return turns


def _split_chat(turns: list[tuple[str, str]]) -> tuple[str | None, str, str | None]:
    """(system, the question: the last user turn before the final answer, the final assistant turn or None)."""
    system = next((text for role, text in turns if role == "system"), None)
    answer = None
    if turns and turns[-1][0] == "assistant":
        answer = turns[-1][1]
        turns = turns[:-1]
    users = [text for role, text in turns if role == "user"]
    if not users:
        raise DataError("the conversation has no user turn to ask")
    return system, users[-1], answer


def _images(row: dict) -> list[Any]:
    value = row.get("images", row.get("image"))
    if value is None:
        return []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in values:
        if isinstance(item, dict):  # a datasets Image record left undecoded: {"bytes": ..., "path": ...}
            item = item.get("bytes") or item.get("path")
        if item is not None:
            out.append(item)
    return out


def _answer_column(row: dict) -> Any:
    for name in ANSWER_COLUMNS:
        value = row.get(name)
        if value is not None:
            if isinstance(value, list) and value and isinstance(value[0], dict):  # TRL completion as messages
                return _split_chat(_turns(value, role_key="role", text_key="content"))[2] or _text(value[-1].get("content"))
            return value
    return None


def _clean(text: str) -> str:
    return IMAGE_PLACEHOLDER.sub("", text).strip()


def to_vqa_row(row: dict, layout: str, *, position: int) -> dict:
    """One source row as a vqa row: id, problem, answer, images (+ system and the row's other fields)."""
    system, answer = None, None
    if layout == "mmpost":
        problem, answer = row.get("problem"), row.get("answer")
    elif layout in ("trl", "verl"):
        prompt = row.get("prompt")
        if isinstance(prompt, str):
            problem = prompt
        else:
            system, problem, _ = _split_chat(_turns(prompt, role_key="role", text_key="content"))
        if layout == "verl":
            reward_model = row.get("reward_model") or {}
            answer = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
        else:
            answer = _answer_column(row)
    elif layout in ("llava", "sharegpt"):
        system, problem, answer = _split_chat(_turns(row.get("conversations"), role_key="from", text_key="value"))
    elif layout == "llama_factory":
        system, problem, answer = _split_chat(_turns(row.get("messages"), role_key="role", text_key="content"))
        answer = _answer_column(row) if _answer_column(row) is not None else answer
    else:
        raise DataError(f"unknown data format '{layout}'; choose one of {FORMATS}")
    if problem is None or not str(problem).strip():
        raise DataError("no question text (problem) in the row")
    if answer is None:
        raise DataError(f"no answer in the row (the {layout} layout reads it from "
                        + {"verl": "reward_model.ground_truth", "mmpost": "answer"}.get(layout, "the last assistant turn or a "
                                                                                           "solution/answer column") + ")")
    extra_info = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    identity = row.get("id", extra_info.get("index", position))
    skip = {"prompt", "messages", "conversations", "image", "images", "problem", "answer", "id"}
    mapped = {k: v for k, v in row.items() if k not in skip}
    mapped.update(id=str(identity), problem=_clean(str(problem)), answer=_clean(answer) if isinstance(answer, str) else answer,
                  images=_images(row))
    if system:
        mapped["system"] = system
    return mapped


class VQARows(Sequence[dict]):
    """Source rows mapped onto vqa rows on access; `columns` renames first ({vqa name: source column}).

    Every row is checked on open (its text columns only, so images are not decoded twice): a row that does not map
    stops here with its file and row, or is left out with `skip_bad_rows` (listed in `skipped`).
    """

    def __init__(self, rows: Sequence[dict], root: str | None, *, layout: str = "auto",
                 columns: dict[str, str] | None = None, where: str = "", skip_bad_rows: bool = False) -> None:
        if layout not in FORMATS:
            raise DataError(f"{where}: unknown data format '{layout}'; choose one of {', '.join(FORMATS)}")
        self.rows, self.root, self.columns, self.where = rows, root, dict(columns or {}), where
        available = _column_names(rows)
        missing = [source for source in self.columns.values() if source not in available]
        if missing:
            raise DataError(f"{where}: task_args.columns names column(s) {missing} that the data does not have; "
                            f"its columns are {sorted(available)}")
        renamed = [next((vqa for vqa, source in self.columns.items() if source == n), n) for n in available]
        try:
            self.layout = detect_format(renamed) if layout == "auto" else layout
        except DataError as error:
            raise DataError(f"{where}: {error}") from None
        self.skipped: list[str] = list(getattr(rows, "skipped", []))
        self._indices: list[int] = []
        for index, row in enumerate(_text_rows(rows)):
            try:
                self._map(row, index)
            except DataError as error:
                if not skip_bad_rows:
                    raise
                self.skipped.append(str(error))
                continue
            self._indices.append(index)
        if not self._indices:
            detail = f" ({len(self.skipped)} bad rows skipped; first: {self.skipped[0]})" if self.skipped else ""
            raise DataError(f"{where}: the dataset is empty{detail}")

    def _map(self, row: dict, index: int) -> dict:
        if self.columns:
            renamed = {k: v for k, v in row.items() if k not in self.columns.values()}
            renamed.update({vqa: row.get(source) for vqa, source in self.columns.items()})
            row = renamed
        try:
            mapped = to_vqa_row(row, self.layout, position=index)
        except DataError as error:
            source = row.get("_source") or f"{self.where}: row {index}"
            identity = f", id {row['id']!r}" if row.get("id") is not None else ""
            raise DataError(f"{source} ({self.layout} layout{identity}): {error}") from None
        mapped["_source"] = row.get("_source") or f"{self.where}: row {index}"
        mapped["_root"] = row.get("_root", self.root)
        return mapped

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = self._indices[index]
        return self._map(self.rows[position], position)


def _column_names(rows: Sequence[dict]) -> list[str]:
    names = getattr(rows, "column_names", None)
    if names is None and getattr(rows, "_dataset", None) is not None:  # a save_to_disk folder (mmpost.data.ArrowRows)
        names = rows._dataset.column_names
    return list(names) if names is not None else [k for k in rows[0] if not k.startswith("_")]


def _text_rows(rows: Sequence[dict]):
    """The rows for checking: a `datasets` table without its image columns (nothing decoded), else the rows."""
    if isinstance(rows, _Table):
        images = [c for c in ("image", "images") if c in rows.column_names]
        light = rows.dataset.remove_columns(images) if images else rows.dataset
        for index, row in enumerate(light):
            yield {**row, **{c: [] for c in images}, "_source": f"{rows.where}: row {index}"}
    else:
        yield from (rows[i] for i in range(len(rows)))


def open_vqa_rows(source: str | Path, *, layout: str = "auto", columns: dict[str, str] | None = None,
                  split: str = "train", skip_bad_rows: bool = False) -> VQARows:
    """`source` read (see `load_table`) and mapped (see `VQARows`)."""
    rows, root = load_table(source, split=split, skip_bad_rows=skip_bad_rows)
    return VQARows(rows, root, layout=layout, columns=columns, where=str(source), skip_bad_rows=skip_bad_rows)
