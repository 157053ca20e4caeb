"""What the built-in synthetic tasks share: split names and question kinds, checked one way, with errors naming
the task."""
from __future__ import annotations

from typing import Sequence

# "test" is what most benchmarks call the held-out split.
SPLIT_ALIASES = {"train": "train", "heldout": "heldout", "test": "heldout"}


def canonical_split(task: str, split: str) -> str:
    """"train" or "heldout" for `split` (its alias "test" included); any other name is refused."""
    if split not in SPLIT_ALIASES:
        raise ValueError(f"{task}: unknown split {split!r}; expected one of {sorted(SPLIT_ALIASES)}")
    return SPLIT_ALIASES[split]


def check_kinds(task: str, kinds: Sequence[str] | str | None, allowed: Sequence[str],
                default: Sequence[str] | None = None) -> tuple[str, ...]:
    """The question kinds to generate: `default` (else every allowed kind) for None, one kind given as a string,
    otherwise the given kinds, which must be a non-empty subset of `allowed`."""
    if kinds is None:
        kinds = tuple(allowed if default is None else default)
    else:
        kinds = tuple([kinds] if isinstance(kinds, str) else kinds)
    if not kinds or any(k not in allowed for k in kinds):
        raise ValueError(f"{task}: kinds must be a non-empty subset of {list(allowed)}, got {list(kinds)}")
    return kinds
