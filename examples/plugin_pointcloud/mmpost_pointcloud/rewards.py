"""The task's reward, registered through the `mmpost.reward` entry point as an object (no decorator here)."""
from __future__ import annotations

from typing import Sequence

from mmpost.rewards.parsing import extract_answer_tag, normalize_text

AXES = ("x", "y", "z")


def axis_accuracy(completions: Sequence[str], samples: Sequence[dict]) -> list[float | None]:
    """1.0 if the `<answer>` content names the sample's axis (case and spacing ignored), else 0.0.

    A reward is `fn(completions, samples, **args) -> list[float | None]`, one value per completion (None =
    not applicable); samples carry the row fields and `decoded` media.
    """
    if len(completions) != len(samples):
        raise ValueError(f"axis_accuracy: got {len(completions)} completions but {len(samples)} samples")
    scores: list[float | None] = []
    for completion, sample in zip(completions, samples):
        answer = extract_answer_tag(completion)
        if sample.get("answer") not in AXES:
            scores.append(None)
            continue
        scores.append(1.0 if answer is not None and normalize_text(answer) == sample["answer"] else 0.0)
    return scores
