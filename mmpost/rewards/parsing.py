"""Pure helpers that pull answers, points and boxes out of model output.

Rewards and the evaluation harness share these, so a benchmark score and a training reward read an
answer the same way. Every helper returns None when nothing usable is found; none of them raises on
odd text.
"""
from __future__ import annotations

import re

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
# A pair or a quadruple in matching brackets: "(3, 4)" or "[3, 4]", never "(3, 4]".
_POINT = re.compile(
    rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)|\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]"
)
_BOX_BODY = rf"\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*"
_BOX = re.compile(rf"\({_BOX_BODY}\)|\[{_BOX_BODY}\]")
_WHITESPACE = re.compile(r"\s+")


def extract_answer_tag(text: str) -> str | None:
    """The stripped content of the last complete `<answer>...</answer>` in `text`, or None.

    The last tag wins because models that revise themselves put the final answer last.
    """
    matches = _ANSWER_TAG.findall(text)
    return matches[-1].strip() if matches else None


def extract_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}`, matching nested braces, or None.

    `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`. When the last `\\boxed{` never closes (a truncated
    generation) the result is None rather than an earlier box, so a cut-off answer is not credited
    with a guess the model later abandoned.
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    body_start = start + len("\\boxed{")
    for index in range(body_start - 1, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[body_start:index].strip()
    return None


def _first_numbers(match: re.Match) -> tuple[float, ...]:
    return tuple(float(group) for group in match.groups() if group is not None)


def parse_point(text: str) -> tuple[float, float] | None:
    """The first `(x, y)` or `[x, y]` pair in `text` as floats, or None.

    Integers and decimals, with optional signs, are accepted; a 4-number box is not a point.
    """
    match = _POINT.search(text)
    if match is None:
        return None
    x, y = _first_numbers(match)
    return x, y


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first `[x1, y1, x2, y2]` or `(x1, y1, x2, y2)` in `text` as floats, as written, or None.

    Corners are returned in the order written; `box_iou` orders them.
    """
    match = _BOX.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = _first_numbers(match)
    return x1, y1, x2, y2


def normalize_text(text: str, *, lowercase: bool = True) -> str:
    """Strip, collapse runs of whitespace to one space, drop trailing periods and (by default) lower-case."""
    text = _WHITESPACE.sub(" ", text.strip()).rstrip(".").rstrip()
    return text.lower() if lowercase else text
