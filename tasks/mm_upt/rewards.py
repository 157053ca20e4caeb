"""MM-UPT's self-reward (Wei et al. 2025, arXiv 2505.22453; waltonfuture/MM-UPT `verl/workers/reward/function.py`,
read at f51d7b6 as summarised in shared/research/seed_methods.md section 3) and a label accuracy for held-out use.

For each prompt's n sampled responses o_1..o_n:
    a_i = content of the LAST `\\boxed{...}` of o_i, or the literal string "None" when there is none
    y*  = Counter(a_1..a_n).most_common(1)[0][0]     (exact-string vote; ties go to the first-seen answer)
    r_i = 1.0 if grade(a_i, y*) else 0.0              (normalised match, else math-verify equivalence)
No format reward, and the ground-truth label is never read: `mm_upt_majority_vote` never touches a sample.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Sequence

from mmpost.registry import REWARDS
from mmpost.rewards.builtin import math_equivalent_anywhere
from mmpost.rewards.parsing import extract_boxed, normalize_text
from mmpost.types import Sample

NO_ANSWER = "None"  # what MM-UPT's extract_boxed_content returns when a response has no box
WORKED_READING = re.compile(r"(\d+(?:\s*\+\s*\d+)+)\s*=")  # "2 + 3 + 1 =", the worked answer's reading


def vote_answer(completion: str) -> str:
    """The answer a response casts in the vote: its last `\\boxed{}` content, or "None" without a box."""
    boxed = extract_boxed(completion)
    return NO_ANSWER if boxed is None else boxed


def majority_answer(answers: Sequence[str], *, none_can_win: bool = True) -> str | None:
    """The most frequent exact string; on a tie the one seen first (Counter keeps insertion order).

    With `none_can_win=False`, "None" votes are left out, and a group with no boxed answer has no winner
    (returns None). MM-UPT's official behaviour is `none_can_win=True`.
    """
    votes = Counter(a for a in answers if none_can_win or a != NO_ANSWER)
    return votes.most_common(1)[0][0] if votes else None


def answers_equal(answer: str, reference: str, *, timeout_seconds: int = 3) -> bool:
    """MM-UPT's `grade_answer` in spirit: equal after normalisation, else equal by math-verify (1/2 = 0.5)."""
    if normalize_text(answer) == normalize_text(reference):
        return True
    if NO_ANSWER in (answer, reference):
        return False
    return bool(math_equivalent_anywhere(reference, answer, timeout_seconds))


def group_rows(group_ids: Sequence[int]) -> dict[int, list[int]]:
    """Row indices of each group, groups and rows in order of first appearance."""
    rows: dict[int, list[int]] = {}
    for index, group in enumerate(group_ids):
        rows.setdefault(int(group), []).append(index)
    return rows


@REWARDS.register("mm_upt_majority_vote")
def mm_upt_majority_vote(
    completions: Sequence[str],
    samples: Sequence[Sample],
    *,
    group_ids: Sequence[int],
    none_can_win: bool = True,
    timeout_seconds: int = 3,
) -> list[float]:
    """1.0 for each response whose boxed answer grades equal to its group's majority answer, else 0.0.

    Group-aware: the engine passes every completion's `group_ids` (one group = one prompt's n samples),
    so groups need not be contiguous. `samples` is only counted, never read: labels cannot leak in.
    """
    if len(completions) != len(samples) or len(completions) != len(group_ids):
        raise ValueError(f"mm_upt_majority_vote: got {len(completions)} completions, {len(samples)} samples and "
                         f"{len(group_ids)} group ids; they must pair up")
    answers = [vote_answer(c) for c in completions]
    scores = [0.0] * len(completions)
    for rows in group_rows(group_ids).values():
        winner = majority_answer([answers[i] for i in rows], none_can_win=none_can_win)
        if winner is None:
            continue
        graded: dict[str, bool] = {}  # the same string always grades the same; math-verify is the slow part
        for i in rows:
            if answers[i] not in graded:
                graded[answers[i]] = (none_can_win or answers[i] != NO_ANSWER) and answers_equal(
                    answers[i], winner, timeout_seconds=timeout_seconds)
            scores[i] = 1.0 if graded[answers[i]] else 0.0
    return scores


@REWARDS.register("mm_upt_label_accuracy")
def mm_upt_label_accuracy(
    completions: Sequence[str], samples: Sequence[Sample], *, field: str = "answer", timeout_seconds: int = 3
) -> list[float | None]:
    """Held-out accuracy against the hidden label: the last box grades equal to `sample[field]`.

    None (not applicable) for rows without a label. Used for evaluation only, never as a training reward
    in the MM-UPT recipe.
    """
    if len(completions) != len(samples):
        raise ValueError(f"mm_upt_label_accuracy: got {len(completions)} completions but {len(samples)} samples")
    scores: list[float | None] = []
    for completion, sample in zip(completions, samples):
        label = sample.get(field)
        if label is None:
            scores.append(None)
            continue
        answer = vote_answer(completion)
        scores.append(1.0 if answer != NO_ANSWER and answers_equal(answer, str(label), timeout_seconds=timeout_seconds) else 0.0)
    return scores


@REWARDS.register("mm_upt_random_control")
def mm_upt_random_control(completions: Sequence[str], samples: Sequence[Sample], *, seed: int = 0) -> list[float]:
    """A control for `mm_upt_majority_vote`, not a method: 1.0 or 0.0 by a coin that depends only on `seed`, the
    response's position in the batch and its text (SHA-256), so it carries no information about the answer's truth or
    the group's vote. GRPO normalises each group's rewards, so each group's advantages have the vote's scale, but their
    directions are unrelated across groups and partly cancel (in session 8 the KL to the warm start after 20 steps was
    0.006 against the vote's 0.028): a gain under it is what an uninformed update gives, not the vote's
    (benchmarks/results/learning_mm_upt_s8_diagnosis.md). Never reads a sample."""
    if len(completions) != len(samples):
        raise ValueError(f"mm_upt_random_control: got {len(completions)} completions but {len(samples)} samples")
    return [float(hashlib.sha256(f"{seed}:{index}:{text}".encode()).digest()[0] & 1) for index, text in enumerate(completions)]


def worked_reading(completion: str) -> tuple[int, ...] | None:
    """The numbers a worked answer says it read ("2 + 3 = \\boxed{5}" -> (2, 3)); None when it has no such form."""
    match = WORKED_READING.search(completion)
    return tuple(int(n) for n in re.split(r"\s*\+\s*", match.group(1))) if match else None


@REWARDS.register("digit_sum_consistent_accuracy")
def digit_sum_consistent_accuracy(
    completions: Sequence[str], samples: Sequence[Sample], *, field: str = "answer", timeout_seconds: int = 3
) -> list[float | None]:
    """`mm_upt_label_accuracy`, paid only when the box follows from the answer's own reading: the worked answer
    "a + b + c = \\boxed{s}" must write as many numbers as the image holds (`sample["numbers"]`, when the row has
    them) and s must be their sum. Not a method of any paper: a training reward for diagnosing GRPO on digit_sum,
    where the box-only reward also pays right boxes reached through wrong readings (24% of the paid samples at the
    session-9 warm start, 40% after GRPO; recipes/grpo.md, "Session 11"), crediting the reading tokens for misreads.
    The held-out metric stays the box-only accuracy."""
    if len(completions) != len(samples):
        raise ValueError(f"digit_sum_consistent_accuracy: got {len(completions)} completions but {len(samples)} samples")
    scores = mm_upt_label_accuracy(completions, samples, field=field, timeout_seconds=timeout_seconds)
    for index, (completion, sample) in enumerate(zip(completions, samples)):
        if not scores[index]:
            continue
        read = worked_reading(completion)
        count = len(sample["numbers"]) if sample.get("numbers") is not None else None
        consistent = read is not None and (count is None or len(read) == count) and str(sum(read)) == vote_answer(completion)
        scores[index] = 1.0 if consistent else 0.0
    return scores
