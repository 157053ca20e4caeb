"""Helpers every modality adapter shares: naming a sample in errors, listing its media, counting placeholders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from mmpost.types import MediaError, MediaRoot, Message, Sample


def sample_id(sample: Sample) -> str:
    return repr(sample.get("id", "<no id>"))


def media_sources(sample: Sample, field: str) -> list[Any]:
    """The sample's `field` (e.g. "images", "audios") as a list; one source is accepted alone; [] when absent."""
    sources = sample.get(field)
    if sources is None:
        return []
    if isinstance(sources, (list, tuple)):
        return list(sources)
    return [sources]


def count_placeholders(messages: Sequence[Message], kind: str, *, url_key: bool = True) -> int:
    """Parts of `kind` ("image", "video", "audio") in chat messages, counted the way the Qwen chat templates count
    them: `{"type": kind}`, or a part carrying a `kind` (or `kind_url`) key."""
    keys = (kind, f"{kind}_url") if url_key else (kind,)
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) or content is None:
            continue
        for part in content:
            if part.get("type") == kind or any(key in part for key in keys):
                count += 1
    return count


def resolve_media_path(source: str | os.PathLike, root: str | os.PathLike | None, kind: str) -> Path:
    """A local media path: `file://` stripped, relative paths taken from `root` (the dataset file's folder).

    With a root the path must lie under it (or under `root.allowed` for a `MediaRoot`): `../` or an absolute path
    elsewhere (`/etc/passwd`) is refused unless the run allows it (`data.media_root`, `data.allow_media_outside_root`).
    The check is lexical (`..` collapsed); symlinks inside the root are followed. Without a root (rows built in
    memory by a task) paths are used as given. Remote URLs are refused: nothing is downloaded at training time.
    """
    text = os.fspath(source)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        raise MediaError(f"{kind} {text}: remote URLs are not fetched; download the file and give its path")
    path = Path(text).expanduser()
    if root is None:
        return path
    if not path.is_absolute():
        path = Path(root) / path
    allowed = root.allowed if isinstance(root, MediaRoot) else os.fspath(root)
    if allowed is not None:
        inside = os.path.abspath(allowed)
        resolved = os.path.abspath(path)
        if os.path.commonpath([inside, resolved]) != inside:
            raise MediaError(f"{kind} {text}: resolves to {resolved}, outside the media root {inside}; media must lie in "
                             "the data file's folder (or data.media_root); set data.media_root=<folder> or "
                             "data.allow_media_outside_root=true to read it")
    return path
