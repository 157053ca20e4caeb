"""The generic "vqa" task: the user's own image question-answer rows.

Rows hold `id`, `problem`, `answer` and `images` (paths relative to the data file's folder, one path or a
list), in a `.jsonl` file or a folder written by `datasets.Dataset.save_to_disk`. Media stay paths
here; the image modality decodes them against each row's `_root`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmpost.config import ConfigError
from mmpost.data import load_rows
from mmpost.registry import TASKS
from mmpost.types import Message, Sample

REQUIRED_FIELDS = ("id", "problem", "answer")


@TASKS.register("vqa")
class VQATask:
    """Questions about images from the user's data; the prompt is the question plus a fixed suffix."""

    name = "vqa"
    modality = "image"

    def __init__(
        self,
        *,
        path: str | Path,
        heldout_path: str | Path | None = None,
        prompt_suffix: str = " Answer with <answer>...</answer>.",
        answer_template: str = "<answer>{answer}</answer>",
        accuracy_reward: str = "exact_match",
    ) -> None:
        if "{answer}" not in answer_template:
            raise ValueError(f"vqa task: answer_template must contain '{{answer}}', got {answer_template!r}")
        self.paths = {"train": path, "heldout": heldout_path}
        self.prompt_suffix = prompt_suffix
        self.answer_template = answer_template
        self.accuracy_reward = accuracy_reward
        self.default_rewards = [
            {"name": accuracy_reward, "weight": 1.0},
            {"name": "answer_tag_format", "weight": 0.5},
        ]

    def check_split(self, split: str) -> str | Path:
        """The file of `split`; a ConfigError naming the missing task option (run by `mmpost validate` too)."""
        key = {"train": "train", "heldout": "heldout", "test": "heldout"}.get(split)
        if key is None:
            raise ValueError(f"vqa task: unknown split {split!r}; expected 'train', 'heldout' or 'test'")
        path = self.paths[key]
        if path is None:
            option = "path" if key == "train" else "heldout_path"
            use = " (held-out evaluation, eval.heldout=true, is the default; set eval.heldout=false to go without)" \
                if key == "heldout" else ""
            raise ConfigError(f"data.task_args.{option}: the vqa task's split {split!r} needs it (a .jsonl file or a "
                              f"save_to_disk folder){use}", key=f"data.task_args.{option}")
        return path

    def load(self, split: str, *, size: int | None = None, skip_bad_rows: bool = False) -> Sequence[Sample]:
        """Rows of `split` ("train" from `path`, "heldout"/"test" from `heldout_path`), the first `size` if given.
        `skip_bad_rows` (the run's `data.skip_bad_rows`) drops rows with missing fields; they are listed in `.skipped`."""
        rows = load_rows(self.check_split(split), required=REQUIRED_FIELDS, skip_bad_rows=skip_bad_rows)
        return rows if size is None else rows[:size]

    def prompt(self, sample: Sample) -> list[Message]:
        """One image placeholder per image of the row, then the question and the suffix."""
        images = sample.get("images") or []
        if isinstance(images, str):
            images = [images]
        content: list[dict] = [{"type": "image"} for _ in images]
        content.append({"type": "text", "text": str(sample["problem"]) + self.prompt_suffix})
        return [{"role": "user", "content": content}]

    def target(self, sample: Sample) -> str:
        answer = sample["answer"]
        # A list of acceptable answers demonstrates the first.
        if isinstance(answer, (list, tuple)):
            answer = answer[0]
        return self.answer_template.format(answer=answer)
