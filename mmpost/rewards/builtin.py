"""Built-in rewards: format checks, answer matching, math equivalence, boxes and points.

A reward is `fn(completions, samples, **args) -> list[float | None]`: one value per completion, None
where the reward does not apply to that sample (a box reward on a colour question). `samples[i]` is the
dataset row completion i answers. The evaluation harness calls the same functions as scorers.
"""
from __future__ import annotations

import math
import multiprocessing
import re
import threading
from typing import Any, Callable, Sequence

from mmpost.registry import REWARDS
from mmpost.rewards import geometry
from mmpost.rewards.geometry import Box
from mmpost.rewards.parsing import (
    extract_answer_tag,
    extract_boxed,
    normalize_text,
    parse_box,
    parse_point,
)
from mmpost.types import DataError, Sample

# A single answer tag spanning the whole output. The inner pattern refuses another tag, so
# "<answer>a</answer><answer>b</answer>" is two answers, not one (R1-AQA's `<answer>.*?</answer>`
# under fullmatch would accept it; `single=False` restores that rule).
_ONE_ANSWER_TAG = re.compile(r"<answer>(?:(?!</?answer>).)*</answer>", re.DOTALL)
_R1_AQA_ANSWER_TAG = re.compile(r"<answer>.*?</answer>", re.DOTALL)
_THINK_ANSWER = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)
_LETTER = re.compile(r"^\(?([a-z])\)?[.:)]?$", re.IGNORECASE)
_LETTER_THEN_TEXT = re.compile(r"^\(?([a-z])\)?[.:)]\s*(.+)$", re.IGNORECASE | re.DOTALL)


def _check_lengths(completions: Sequence[str], samples: Sequence[Sample]) -> None:
    if len(completions) != len(samples):
        raise ValueError(f"got {len(completions)} completions but {len(samples)} samples; they must pair up")


def _sample_name(sample: Sample) -> str:
    return f"sample {sample.get('id', '?')!r}" + (f" ({sample['_source']})" if "_source" in sample else "")


def _required_field(sample: Sample, field: str) -> Any:
    if sample.get(field) is None:
        raise DataError(f"{_sample_name(sample)} has no '{field}' field, which this reward compares against")
    return sample[field]


def answer_text(completion: str) -> str:
    """What a completion answers: the last `<answer>` tag's content, else the whole stripped output."""
    tagged = extract_answer_tag(completion)
    return tagged if tagged is not None else completion.strip()


def _gold_strings(value: Any) -> list[str]:
    """A gold answer as a list of acceptable strings (a string, a number, or a list of either)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in values]


# ---- format ------------------------------------------------------------------------------------
@REWARDS.register("answer_tag_format")
def answer_tag_format(completions: Sequence[str], samples: Sequence[Sample], *, single: bool = True) -> list[float]:
    """1.0 if the whole stripped output is one `<answer>...</answer>`, else 0.0 (R1-AQA's format reward).

    `single=True` (default) also rejects outputs holding two answer tags; `single=False` is R1-AQA's
    literal `re.fullmatch(r"<answer>.*?</answer>", text, re.DOTALL)`.
    """
    _check_lengths(completions, samples)
    pattern = _ONE_ANSWER_TAG if single else _R1_AQA_ANSWER_TAG
    return [1.0 if pattern.fullmatch(c.strip()) else 0.0 for c in completions]


@REWARDS.register("think_answer_format")
def think_answer_format(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """1.0 if the stripped output matches `^<think>.*?</think>\\s*<answer>.*?</answer>$` (DOTALL), else 0.0."""
    _check_lengths(completions, samples)
    return [1.0 if _THINK_ANSWER.match(c.strip()) else 0.0 for c in completions]


# ---- answer matching ---------------------------------------------------------------------------
@REWARDS.register("exact_match")
def exact_match(
    completions: Sequence[str], samples: Sequence[Sample], *, field: str = "answer", case_sensitive: bool = False
) -> list[float]:
    """1.0 if the normalised answer equals the sample's `field` (a string or a list of acceptable strings).

    The answer is the last `<answer>` tag's content, else the whole output; both sides are stripped,
    whitespace-collapsed and stripped of trailing periods, and lower-cased unless `case_sensitive`.
    """
    _check_lengths(completions, samples)
    scores = []
    for completion, sample in zip(completions, samples):
        golds = _gold_strings(_required_field(sample, field))
        gold = {normalize_text(g, lowercase=not case_sensitive) for g in golds}
        predicted = normalize_text(answer_text(completion), lowercase=not case_sensitive)
        scores.append(1.0 if predicted in gold else 0.0)
    return scores


def _gold_choice_index(sample: Sample) -> int:
    """Index of the correct option; `answer` is the option text or its letter (A = first option)."""
    choices = [normalize_text(str(c)) for c in sample["choices"]]
    answer = str(_required_field(sample, "answer"))
    if normalize_text(answer) in choices:
        return choices.index(normalize_text(answer))
    letter = _LETTER.match(answer.strip())
    if letter is not None:
        index = ord(letter.group(1).upper()) - ord("A")
        if index < len(choices):
            return index
    raise DataError(
        f"{_sample_name(sample)}: answer {answer!r} is neither one of its choices {sample['choices']} nor the letter of one"
    )


def _predicted_choice_index(text: str, choices: Sequence[str]) -> int | None:
    """The option a free-text answer names: a letter ("B", "(B)", "B."), the option text, or "B. text"."""
    text = text.strip()
    normalized = normalize_text(text)
    normalized_choices = [normalize_text(str(c)) for c in choices]
    if normalized in normalized_choices:
        return normalized_choices.index(normalized)
    letter = _LETTER.match(text)
    if letter is not None:
        index = ord(letter.group(1).upper()) - ord("A")
        return index if index < len(choices) else None
    letter_and_text = _LETTER_THEN_TEXT.match(text)
    if letter_and_text is not None:
        index = ord(letter_and_text.group(1).upper()) - ord("A")
        # "B. blue" counts only when the letter and the text name the same option.
        if index < len(choices) and normalize_text(letter_and_text.group(2)) == normalized_choices[index]:
            return index
    return None


@REWARDS.register("choice_match")
def choice_match(completions: Sequence[str], samples: Sequence[Sample]) -> list[float | None]:
    """1.0 if the answer picks the correct option of a multiple-choice sample, else 0.0; None without `choices`.

    Accepted forms: the letter ("B", "(B)", "B.", "b"), the option text, or both ("B. blue") when
    they agree. The sample's `answer` may be the option text or its letter.
    """
    _check_lengths(completions, samples)
    scores: list[float | None] = []
    for completion, sample in zip(completions, samples):
        if not sample.get("choices"):
            scores.append(None)
            continue
        gold = _gold_choice_index(sample)
        predicted = _predicted_choice_index(answer_text(completion), sample["choices"])
        scores.append(1.0 if predicted == gold else 0.0)
    return scores


# ---- math --------------------------------------------------------------------------------------
def _math_parse(text: str, timeout_seconds: int) -> list:
    """math_verify's parse; a bare LaTeX answer such as `\\sqrt{2}` is retried inside `$...$`."""
    from math_verify import parse

    parsed = parse(text, parsing_timeout=timeout_seconds)
    if not parsed and text and "$" not in text:
        parsed = parse(f"${text}$", parsing_timeout=timeout_seconds)
    return parsed


def math_equivalent(gold: str, predicted: str, timeout_seconds: int = 3) -> bool | None:
    """Whether math_verify finds `predicted` equal to `gold`; None when either side parses to nothing.

    Must run in a main thread: math_verify bounds each step with `signal.alarm(timeout_seconds)`.
    """
    from math_verify import verify

    parsed_gold = _math_parse(gold, timeout_seconds)
    parsed_predicted = _math_parse(predicted, timeout_seconds)
    if not parsed_gold or not parsed_predicted:
        return None
    return bool(verify(parsed_gold, parsed_predicted, timeout_seconds=timeout_seconds))


class _MathWorker:
    """One spawned process that runs `math_equivalent` for callers outside the main thread.

    signal.alarm only works in a main thread, so a reward called from a worker thread (an async
    scorer, a thread pool) sends the comparison to a process whose main thread can use it, and a
    comparison stuck in C code is ended by killing that process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = None

    def __call__(self, gold: str, predicted: str, timeout_seconds: int) -> bool | None:
        with self._lock:
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(1)
            pending = self._pool.apply_async(math_equivalent, (gold, predicted, timeout_seconds))
        # Parse both sides and verify: three bounded steps, plus the spawn of a fresh process.
        try:
            return pending.get(timeout=3 * timeout_seconds + 30)
        except multiprocessing.TimeoutError:
            with self._lock:
                if self._pool is not None:
                    self._pool.terminate()
                    self._pool = None
            return False


_math_worker = _MathWorker()


def math_equivalent_anywhere(gold: str, predicted: str, timeout_seconds: int) -> bool | None:
    """`math_equivalent` from any thread: math-verify's timeouts use SIGALRM, which only the main thread has, so
    other threads hand the comparison to a helper process."""
    if threading.current_thread() is threading.main_thread():
        return math_equivalent(gold, predicted, timeout_seconds)
    return _math_worker(gold, predicted, timeout_seconds)


def math_answer_text(completion: str) -> str:
    """The math answer of a completion: the last `<answer>` tag, else the last `\\boxed{}`, else the raw output."""
    tagged = extract_answer_tag(completion)
    if tagged is not None:
        return tagged
    boxed = extract_boxed(completion)
    return boxed if boxed is not None else completion.strip()


@REWARDS.register("math_match")
def math_match(
    completions: Sequence[str], samples: Sequence[Sample], *, field: str = "answer", timeout_seconds: int = 3
) -> list[float]:
    """1.0 if the answer is mathematically equal to the gold (`math_verify.parse` + `verify`), else 0.0.

    The answer is the last `<answer>` tag, else the last `\\boxed{}`, else the raw output; a gold
    `\\boxed{}` is unwrapped too. When either side parses to nothing (words, letters), or verify says no,
    the normalised strings are compared instead, as R1-AQA's accuracy reward does. Each parse and
    comparison is bounded by `timeout_seconds` (in a spawned process when called off the main thread).
    """
    _check_lengths(completions, samples)
    scores = []
    for completion, sample in zip(completions, samples):
        predicted = math_answer_text(completion)
        correct = False
        for gold in _gold_strings(_required_field(sample, field)):
            gold = math_answer_text(gold)
            if normalize_text(gold) == normalize_text(predicted) or math_equivalent_anywhere(
                gold, predicted, timeout_seconds
            ):
                correct = True
                break
        scores.append(1.0 if correct else 0.0)
    return scores


# ---- boxes and points --------------------------------------------------------------------------
def _as_box(value: Any) -> Box | None:
    """A gold box from a 4-list of numbers or a string holding one; None otherwise."""
    if isinstance(value, str):
        return parse_box(value)
    if isinstance(value, (list, tuple)) and len(value) == 4:
        try:
            x1, y1, x2, y2 = (float(v) for v in value)
        except (TypeError, ValueError):
            return None
        return x1, y1, x2, y2
    return None


def gold_box(sample: Sample) -> Box | None:
    """The sample's box: its `box` field (x1, y1, x2, y2), else `answer` when that is a 4-list; else None."""
    if sample.get("box") is not None:
        box = _as_box(sample["box"])
        if box is None:
            raise DataError(f"{_sample_name(sample)}: 'box' must be [x1, y1, x2, y2], got {sample['box']!r}")
        return box
    answer = sample.get("answer")
    if isinstance(answer, (list, tuple)):
        return _as_box(answer)
    return None


def box_iou_value(predicted: Box, gold: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; swapped corners are reordered, an empty union is 0.

    IoU = |A ∩ B| / (|A| + |B| - |A ∩ B|), the RefCOCO / VLMEvalKit rule.
    """
    return geometry.box_iou(geometry.ordered_box(predicted), geometry.ordered_box(gold))


def _scores_against_gold_box(completions: Sequence[str], samples: Sequence[Sample],
                             score: Callable[[str, Box], float]) -> list[float | None]:
    """`score(completion, the sample's gold box)` per completion; None for a sample without a box."""
    _check_lengths(completions, samples)
    scores: list[float | None] = []
    for completion, sample in zip(completions, samples):
        gold = gold_box(sample)
        scores.append(None if gold is None else score(completion, gold))
    return scores


@REWARDS.register("box_iou")
def box_iou(
    completions: Sequence[str], samples: Sequence[Sample], *, threshold: float | None = None
) -> list[float | None]:
    """IoU of the answer's first box with the sample's box, or 1/0 for IoU >= `threshold`; None without a box.

    An answer with no parseable `[x1, y1, x2, y2]` scores 0. Coordinates are compared as written, so
    the prompt and the gold box must use the same convention (pixels of the image the model sees).
    """
    def score(completion: str, gold: Box) -> float:
        predicted = parse_box(answer_text(completion))
        iou = 0.0 if predicted is None else box_iou_value(predicted, gold)
        return iou if threshold is None else float(iou >= threshold)

    return _scores_against_gold_box(completions, samples, score)


@REWARDS.register("point_in_box")
def point_in_box(completions: Sequence[str], samples: Sequence[Sample]) -> list[float | None]:
    """1.0 if the answer's first `(x, y)` lies in the sample's box, edges included (ScreenSpot); None without a box."""
    def score(completion: str, gold: Box) -> float:
        point = parse_point(answer_text(completion))
        return 0.0 if point is None else float(geometry.point_in_box(point, geometry.ordered_box(gold)))

    return _scores_against_gold_box(completions, samples, score)


# ---- combining ---------------------------------------------------------------------------------
def combine_rewards(parts: dict[str, Sequence[float | None]], weights: dict[str, float]) -> list[float]:
    """Total reward per completion: sum over named parts of weight * value, a None (or NaN) value counting 0.

    Parts without a weight are only logged and do not enter the total; a weight naming a missing part,
    or parts of unequal length, raise ValueError.
    """
    missing = [name for name in weights if name not in parts]
    if missing:
        raise ValueError(f"weights name reward(s) {missing} that were not computed; computed: {sorted(parts)}")
    lengths = {name: len(values) for name, values in parts.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"reward parts have different lengths: {lengths}")
    size = next(iter(lengths.values()), 0)
    totals = [0.0] * size
    for name, weight in weights.items():
        for i, value in enumerate(parts[name]):
            if value is not None and not math.isnan(value):
                totals[i] += weight * value
    return totals
