"""The task MM-UPT trains on (registered as "digit_sum"): unlabeled image questions answered in `\\boxed{}`.

Default: synthetic images of two digits, "What is the sum of the numbers shown?". The label exists (it is
how held-out accuracy is measured) but train rows do not carry it unless `train_labels=True` (used only
by the warm-up SFT that stands in for a pretrained model). With `path` (and `heldout_path`), rows come from
the user's own file instead: `id`, `problem`, `images`, optionally `answer` (the MMR1 / Geometry3K form).
Train and held-out images come from disjoint parts of image space (by a hash of the scene).
"""
from __future__ import annotations

import hashlib
import random
from typing import Sequence

from mmpost.data import load_rows
from mmpost.registry import TASKS
from mmpost.tasks.common import canonical_split
from mmpost.tasks.mm_upt.render import DigitScene, random_digit_scene, render_digits
from mmpost.types import DataError, Message, Sample

# MM-UPT's prompt suffix (examples/qwen2_5_vl_7b_mmr1.sh / config.yaml), verbatim.
MM_UPT_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
QUESTION = "What is the sum of the numbers shown?"
DEFAULT_SIZES = {"train": 512, "heldout": 64}
HELDOUT_FRACTION_DENOMINATOR = 8
READING_ORDERS = ("fixed", "shuffled")
# `train_offset` values for rows the warm-up SFT never read (it reads train rows 0..train_size-1 of seed 0): MM-UPT's
# own unseen prompts, and a validation set for choosing settings without touching the held-out split. Both lie in the
# train part of image space, so they are disjoint from the held-out questions by construction, and from each other and
# the SFT rows by stream index (sizes below 500,000 rows).
UNSEEN_TRAIN_OFFSET = 500_000
VALIDATION_OFFSET = 1_000_000


def scene_split(scene: DigitScene) -> str:
    """'heldout' or 'train': a fixed partition of all possible images, whatever the seed or sizes."""
    digest = hashlib.sha256(scene.key().encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


def worked_answer(numbers: Sequence[int]) -> str:
    """The demonstration: the numbers read, their sum boxed, e.g. "2 + 3 = \\boxed{5}"."""
    return " + ".join(str(n) for n in numbers) + f" = \\boxed{{{sum(numbers)}}}"


@TASKS.register("digit_sum")
class DigitSumTask:
    """Sums of 1-4 rendered digits, asked with MM-UPT's `\\boxed{}` suffix. The default, 2 digits in 1..3, suits
    the ~200k-parameter tiny model: 225 supervised steps teach it to read them (held-out greedy accuracy 0.67).

    Options: `count` numbers per image, digits in [`low`, `high`], `image_size`, sizes, `seed`,
    `train_labels` (put the label on train rows; off for unsupervised training), `path`/`heldout_path`
    (the user's own rows instead of synthetic ones), `suffix` (the instruction after the question),
    `reading_order` of the demonstration: "fixed" (left to right, the default) or "shuffled" (each labelled row reads
    its numbers in its own random order, drawn after its image so the images are the same; self-consistency's
    premise of several reasoning paths that share the right answer). It changes the warm-up SFT's demonstrations only:
    MM-UPT itself never sees a demonstration. `train_offset`: the train split's first stream index (default 0, the rows
    the warm-up SFT reads); `UNSEEN_TRAIN_OFFSET` and `VALIDATION_OFFSET` give rows the warm start has never seen.
    """

    name = "digit_sum"
    modality = "image"
    accuracy_reward = "mm_upt_label_accuracy"

    def __init__(self, *, seed: int = 0, count: int = 2, low: int = 1, high: int = 3, image_size: int = 112,
                 train_size: int = DEFAULT_SIZES["train"], heldout_size: int = DEFAULT_SIZES["heldout"],
                 train_labels: bool = False, path: str | None = None, heldout_path: str | None = None,
                 suffix: str = MM_UPT_SUFFIX, reading_order: str = "fixed", train_offset: int = 0) -> None:
        if reading_order not in READING_ORDERS:
            raise ValueError(f"digit_sum task: reading_order must be one of {READING_ORDERS}, got {reading_order!r}")
        if train_offset < 0:
            raise ValueError(f"digit_sum task: train_offset must be >= 0, got {train_offset}")
        random_digit_scene(random.Random(0), image_size=image_size, count=count, low=low, high=high)  # checks options
        self.seed, self.count, self.low, self.high, self.image_size = seed, count, low, high, image_size
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.train_labels = train_labels
        self.paths = {"train": path, "heldout": heldout_path}
        self.suffix = suffix
        self.reading_order = reading_order
        self.train_offset = train_offset
        self.default_rewards = [{"name": "mm_upt_majority_vote", "weight": 1.0}]

    def load(self, split: str, *, size: int | None = None) -> Sequence[Sample]:
        """`size` rows of `split`. Synthetic rows: id, images, problem, numbers and answer (held-out, or
        train with `train_labels`); sample i draws from its own stream seeded by (seed, split, i), where a train row's i
        starts at `train_offset`."""
        split = canonical_split("digit_sum", split)
        size = self.sizes[split] if size is None else size
        if self.paths["train"] is not None:
            return self._load_file(split, size)
        labelled = split == "heldout" or self.train_labels
        samples = []
        first = self.train_offset if split == "train" else 0
        for index in range(first, first + size):
            rng = random.Random(f"mmpost.digit_sum:{self.seed}:{split}:{index}")
            while True:
                scene = random_digit_scene(rng, image_size=self.image_size, count=self.count, low=self.low, high=self.high)
                if scene_split(scene) == split:
                    break
            sample: Sample = {"id": f"digit_sum-{split}-{self.seed}-{index:05d}", "images": [render_digits(scene)],
                              "problem": QUESTION}
            if labelled:
                sample.update(answer=str(sum(scene.numbers)), numbers=list(scene.numbers))
                if self.reading_order == "shuffled":
                    order = list(range(len(scene.numbers)))
                    rng.shuffle(order)
                    sample["reading_order"] = order
            else:
                # Kept out of `answer`, which no reward or demonstration may see in unsupervised training; only the
                # run diagnostics read it, to log the vote's agreement with the truth (mmpost/diagnostics.py).
                sample["hidden_answer"] = str(sum(scene.numbers))
            samples.append(sample)
        return samples

    def _load_file(self, split: str, size: int | None) -> Sequence[Sample]:
        path = self.paths[split]
        if path is None:
            raise ValueError(f"digit_sum task: split {split!r} needs the task option "
                             f"'{'path' if split == 'train' else 'heldout_path'}' when 'path' is set")
        rows = load_rows(path, required=("id", "problem"))
        return rows if size is None else rows[:size]

    @staticmethod
    def vote_key(completion: str) -> str:
        """What a response casts in a majority vote (held-out maj@k uses MM-UPT's own rule)."""
        from mmpost.tasks.mm_upt.rewards import vote_answer

        return vote_answer(completion)

    def prompt(self, sample: Sample) -> list[Message]:
        content: list[dict] = [{"type": "image"} for _ in (sample.get("images") or [])]
        content.append({"type": "text", "text": str(sample["problem"]) + self.suffix})
        return [{"role": "user", "content": content}]

    def target(self, sample: Sample) -> str:
        """The worked answer (synthetic rows) or `\\boxed{answer}`; unlabeled rows have no demonstration."""
        if sample.get("numbers") is not None:
            order = sample.get("reading_order") or range(len(sample["numbers"]))
            return worked_answer([sample["numbers"][i] for i in order])
        if sample.get("answer") is None:
            raise DataError(f"digit_sum task: sample {sample.get('id', '?')!r} has no label, so no demonstration "
                            "(MM-UPT trains without labels; use train_labels=true only for a supervised warm-up)")
        return f"\\boxed{{{sample['answer']}}}"
