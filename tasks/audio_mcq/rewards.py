"""R1-AQA's rewards (xiaomi-research/r1-aqa `src/utils/rewards.py`, read at commit 9e582a2) and AudioMCQ's.

R1-AQA: total = accuracy + format, each 0 or 1.
- `r1aqa_accuracy`: math_verify `verify(parse(output), parse(solution))`; when that is not 1, the first
  `<answer>(.*?)</answer>` of each side (`re.search`, no DOTALL; the whole stripped text when absent) is
  compared as an exact, case-sensitive string. The solution is `<answer>{option text}</answer>`.
- `r1aqa_format`: `re.fullmatch(r"<answer>.*?</answer>", output, re.DOTALL)` on the raw output (not
  stripped: a leading newline fails, as in R1-AQA). `answer_tag_format(single=False)` is the same rule
  after stripping, so it is not reused here.
AudioMCQ (inclusionAI/AudioMCQ `plugin.py`, as summarised in the team's research notes, not re-read here):
`audiomcq_accuracy` is the case-insensitive exact match of the `<answer>` contents (which tag when there are
several is our choice: the first, like R1-AQA); its format rule is the whole stripped output being one
`<answer>...</answer>`, i.e. the built-in `answer_tag_format(single=False)`.
"""
from __future__ import annotations

import re
import threading
from typing import Sequence

from mmpost.registry import REWARDS
from mmpost.types import DataError, Sample

_FIRST_ANSWER = re.compile(r"<answer>(.*?)</answer>")
_WHOLE_ANSWER = re.compile(r"<answer>.*?</answer>", re.DOTALL)
MATH_TIMEOUT_SECONDS = 5  # math_verify's own default


def solution_of(sample: Sample) -> str:
    """R1-AQA's `solution`: the sample's `solution` field, else `<answer>{answer}</answer>`."""
    if sample.get("solution") is not None:
        return str(sample["solution"])
    if sample.get("answer") is None:
        raise DataError(f"sample {sample.get('id', '?')!r} has neither 'solution' nor 'answer' to compare against")
    return f"<answer>{sample['answer']}</answer>"


def _first_answer_or_whole(text: str) -> str:
    match = _FIRST_ANSWER.search(text)
    return match.group(1).strip() if match else text.strip()


def _math_verified(output: str, solution: str) -> bool:
    """R1-AQA's symbolic check; any math_verify error counts as "not verified", as there.

    math_verify bounds its steps with signal.alarm, which works only in the main thread; elsewhere the
    timeouts are switched off (the inputs are short answers, not adversarial LaTeX).
    """
    from math_verify import parse, verify

    timeout = MATH_TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None
    try:
        return float(verify(parse(output, parsing_timeout=timeout), parse(solution, parsing_timeout=timeout),
                            timeout_seconds=timeout)) > 0
    except Exception:  # noqa: BLE001 - R1-AQA: `except Exception: pass`
        return False


def r1aqa_accuracy_value(output: str, solution: str) -> float:
    """1.0 if math_verify equates output and solution, or their first `<answer>` contents are equal; else 0.0."""
    if _math_verified(output, solution):
        return 1.0
    return 1.0 if _first_answer_or_whole(output) == _first_answer_or_whole(solution) else 0.0


@REWARDS.register("r1aqa_accuracy")
def r1aqa_accuracy(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """R1-AQA `accuracy_reward`: math_verify on the whole output, else exact `<answer>` string match."""
    if len(completions) != len(samples):
        raise ValueError(f"got {len(completions)} completions but {len(samples)} samples; they must pair up")
    return [r1aqa_accuracy_value(c, solution_of(s)) for c, s in zip(completions, samples)]


@REWARDS.register("r1aqa_format")
def r1aqa_format(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """R1-AQA `format_reward`: 1.0 iff the raw output fully matches `<answer>.*?</answer>` (DOTALL)."""
    if len(completions) != len(samples):
        raise ValueError(f"got {len(completions)} completions but {len(samples)} samples; they must pair up")
    return [1.0 if _WHOLE_ANSWER.fullmatch(c) else 0.0 for c in completions]


@REWARDS.register("audiomcq_accuracy")
def audiomcq_accuracy(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """AudioMCQ's accuracy: the `<answer>` contents equal the answer, case-insensitively (0 without a tag)."""
    if len(completions) != len(samples):
        raise ValueError(f"got {len(completions)} completions but {len(samples)} samples; they must pair up")
    scores = []
    for completion, sample in zip(completions, samples):
        gold = _first_answer_or_whole(solution_of(sample)).lower()
        match = _FIRST_ANSWER.search(completion)
        scores.append(1.0 if match and match.group(1).strip().lower() == gold else 0.0)
    return scores
