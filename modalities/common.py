"""Helpers every modality adapter shares: naming a sample in errors, listing its media, counting placeholders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from mmpost.types import MediaError, Message, Sample


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

    Remote URLs are refused: nothing is downloaded at training time.
    """
    text = os.fspath(source)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        raise MediaError(f"{kind} {text}: remote URLs are not fetched; download the file and give its path")
    path = Path(text).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    return path
