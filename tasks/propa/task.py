"""The synthetic multi-step visual task PROPA's recipe runs on (task "propa_digits", reward "propa_answer").

An image shows 2-4 digits; a question needs two to four steps: read the digits, then add them up one at a
time ("sum"), filter and count them ("count"), or find the largest and smallest and subtract ("range"). Each
sample carries its reference chain in `steps` (the last step contains "The final answer is N"), which is what
PROPA's interleaved SFT and the step-format warm start train on. Train and held-out questions come from
disjoint halves of question space (a hash of kind, digits and threshold). `question_style` "official" wraps
the question in PROPA's instruction ("Think step by step ... Please ONLY response one step at a time."),
"short" leaves it bare (CPU presets: with the tiny 516-token vocabulary the wrapper alone is ~100 tokens).
"""
from __future__ import annotations

import hashlib
import random
from typing import Sequence

from mmpost.registry import REWARDS, TASKS
from mmpost.search.mcts import STEP_SYSTEM_PROMPT, is_correct_step
from mmpost.tasks.common import canonical_split, check_kinds
from mmpost.tasks.propa.render import render_digits
from mmpost.types import Message, Sample

KINDS: tuple[str, ...] = ("sum", "count", "range")
DEFAULT_SIZES = {"train": 512, "heldout": 64}
HELDOUT_DENOMINATOR = 8
SHORT_QUESTION_TEMPLATE = "{question}"  # the CPU presets: a ~200k-parameter model with a 516-token vocabulary
QUESTION_TEMPLATE = ("Think step by step to solve the problem in the image: {question} The final answer should be a "
                     "number. Please ONLY response one step at a time.")


def _listing(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


def solution_steps(kind: str, digits: Sequence[int], threshold: int | None = None) -> tuple[str, list[str], str]:
    """(question, reference steps, answer) for a question of `kind` about `digits`."""
    read = f"The digits are {_listing(digits)}."
    if kind == "sum":
        steps, total = [read], digits[0]
        for digit in digits[1:]:
            steps.append(f"{total} + {digit} = {total + digit}.")
            total += digit
        steps[-1] += f" The final answer is {total}."
        return "What is the sum of the digits?", steps, str(total)
    if kind == "count":
        if threshold is None:
            raise ValueError("propa_digits: a count question needs a threshold")
        above = [d for d in digits if d > threshold]
        middle = f"The digits greater than {threshold} are {_listing(above)}." if above else f"No digit is greater than {threshold}."
        return (f"How many digits are greater than {threshold}?", [read, middle, f"The final answer is {len(above)}."],
                str(len(above)))
    if kind == "range":
        high, low = max(digits), min(digits)
        return ("What is the largest digit minus the smallest digit?",
                [read, f"The largest is {high} and the smallest is {low}.", f"{high} - {low} = {high - low}. The final answer is {high - low}."],
                str(high - low))
    raise ValueError(f"propa_digits: unknown question kind {kind!r}; expected one of {KINDS}")


def question_split(kind: str, digits: Sequence[int], threshold: int | None) -> str:
    key = f"{kind}|{_listing(digits)}|{threshold}"
    digest = hashlib.sha256(key.encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_DENOMINATOR == 0 else "train"


def make_sample(kind: str, rng: random.Random, *, split: str, image_size: int, sample_id: str,
                min_digits: int = 2, max_digits: int = 4) -> Sample:
    while True:
        digits = [rng.randint(0, 9) for _ in range(rng.randint(min_digits, max_digits))]
        threshold = rng.randint(1, 7) if kind == "count" else None
        if question_split(kind, digits, threshold) == split:
            break
    question, steps, answer = solution_steps(kind, digits, threshold)
    return {"id": sample_id, "images": [render_digits(digits, image_size=image_size)], "problem": question,
            "answer": answer, "steps": steps, "kind": kind, "digits": digits, "threshold": threshold}


@TASKS.register("propa_digits")
class PropaDigitsTask:
    """Multi-step arithmetic and counting over digits in an image; see the module docstring."""

    name = "propa_digits"
    modality = "image"
    accuracy_reward = "propa_answer"

    def __init__(self, *, seed: int = 0, image_size: int = 112, kinds: Sequence[str] | None = None,
                 train_size: int = DEFAULT_SIZES["train"], heldout_size: int = DEFAULT_SIZES["heldout"],
                 min_digits: int = 2, max_digits: int = 4, question_style: str = "official",
                 system_prompt: str = STEP_SYSTEM_PROMPT, step_max_new_tokens: int = 28, max_steps: int = 6) -> None:
        if question_style not in ("official", "short"):
            raise ValueError(f"propa_digits: question_style must be 'official' or 'short', got {question_style!r}")
        self.template = QUESTION_TEMPLATE if question_style == "official" else SHORT_QUESTION_TEMPLATE
        self.kinds = check_kinds("propa_digits", kinds, KINDS)
        if not 1 <= min_digits <= max_digits <= 4:
            raise ValueError(f"propa_digits: need 1 <= min_digits <= max_digits <= 4, got {min_digits}, {max_digits}")
        self.seed, self.image_size = seed, image_size
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.min_digits, self.max_digits = min_digits, max_digits
        self.default_rewards = [{"name": "propa_answer", "weight": 1.0}]
        # How the policy is evaluated (`evaluate_policy`): the step format's system turn ("" = none, the CPU
        # presets), tokens per step and the step cap.
        self.system_prompt, self.step_max_new_tokens, self.max_steps = system_prompt, step_max_new_tokens, max_steps

    def load(self, split: str, *, size: int | None = None) -> list[Sample]:
        split = canonical_split("propa_digits", split)
        size = self.sizes[split] if size is None else size
        samples = []
        for index in range(size):
            rng = random.Random(f"mmpost.propa_digits:{self.seed}:{split}:{index}")
            samples.append(make_sample(self.kinds[index % len(self.kinds)], rng, split=split, image_size=self.image_size,
                                       sample_id=f"propa-{split}-{self.seed}-{index:05d}", min_digits=self.min_digits,
                                       max_digits=self.max_digits))
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        text = self.template.format(question=sample["problem"])
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    def target(self, sample: Sample) -> str:
        """The whole reference chain (step-format training uses `sample["steps"]` one step at a time)."""
        return " ".join(sample["steps"])

    def evaluate_policy(self, policy, backend, rows: Sequence[Sample], *, rank: int = 0, world: int = 1) -> tuple[float, float]:
        """(correct, questions): greedy step-by-step decoding (PROPA's greedy baseline: one step per call in the step
        format, until "The final answer is" or `max_steps` steps), scored by PROPA's check. The engine's held-out
        accuracy calls this, so a run's summary holds the step-wise held-out accuracy before and after."""
        from mmpost.search.prm import greedy_answer
        from mmpost.search.source import PolicyStepProposer

        rows = list(rows)
        if not rows:
            return 0.0, 0.0
        proposer = PolicyStepProposer(policy, backend, rows, max_new_tokens=self.step_max_new_tokens,
                                      system_prompt=self.system_prompt)
        answers = greedy_answer(proposer, len(rows), max_steps=self.max_steps)
        return float(sum(propa_answer([a.text for a in answers], rows))), float(len(rows))


@REWARDS.register("propa_answer")
def propa_answer(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    """1 when the completion contains "the final answer is {answer}" (PROPA's check), else 0."""
    return [1.0 if is_correct_step(c, str(s["answer"])) else 0.0 for c, s in zip(completions, samples, strict=True)]
