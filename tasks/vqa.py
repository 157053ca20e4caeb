"""The generic "vqa" task: the user's own image question-answer rows.

Native rows hold `id`, `problem`, `answer` and `images` (paths relative to the data file's folder, one path or a
list). The data may also be in TRL's, verl's, LLaVA/ShareGPT's or LLaMA-Factory's layout, in a JSONL, JSON,
parquet or arrow file, a folder, a `save_to_disk` folder or a hub dataset id: `mmpost.tasks.vqa_formats` reads it
through `datasets` and maps it onto these rows (its docstring has the column table). Media stay as given (paths,
bytes or PIL images); the image modality decodes them, paths against each row's `_root`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmpost.config import ConfigError
from mmpost.registry import TASKS
from mmpost.tasks.vqa_formats import open_vqa_rows
from mmpost.types import Message, Sample


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
        format: str = "auto",
        columns: dict[str, str] | None = None,
        train_split: str = "train",
        heldout_split: str = "test",
    ) -> None:
        """`path`/`heldout_path`: a data file, a folder or a hub dataset id; `format`: auto | mmpost | trl | verl |
        llava | sharegpt | llama_factory; `columns`: {problem|answer|images|id: your column}; `train_split` /
        `heldout_split`: the split read from a folder of splits, a DatasetDict or a hub id."""
        if "{answer}" not in answer_template:
            raise ValueError(f"vqa task: answer_template must contain '{{answer}}', got {answer_template!r}")
        self.paths = {"train": path, "heldout": heldout_path}
        self.prompt_suffix = prompt_suffix
        self.answer_template = answer_template
        self.accuracy_reward = accuracy_reward
        self.format, self.columns = format, dict(columns or {})
        self.splits = {"train": train_split, "heldout": heldout_split}
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
            raise ConfigError(f"data.task_args.{option}: the vqa task's split {split!r} needs it (a data file, a folder "
                              f"or a hub dataset id){use}", key=f"data.task_args.{option}")
        return path

    def load(self, split: str, *, size: int | None = None, skip_bad_rows: bool = False) -> Sequence[Sample]:
        """Rows of `split` ("train" from `path`, "heldout"/"test" from `heldout_path`), the first `size` if given,
        mapped from the data's layout (`mmpost.tasks.vqa_formats`). `skip_bad_rows` (the run's `data.skip_bad_rows`)
        drops rows that do not map; they are listed in `.skipped`."""
        path = self.check_split(split)
        rows = open_vqa_rows(path, layout=self.format, columns=self.columns,
                             split=self.splits["train" if split == "train" else "heldout"], skip_bad_rows=skip_bad_rows)
        return rows if size is None else rows[:size]

    def prompt(self, sample: Sample) -> list[Message]:
        """The row's system turn if it has one, then one image placeholder per image, the question and the suffix."""
        images = sample.get("images") or []
        if isinstance(images, (str, bytes)) or not isinstance(images, (list, tuple)):
            images = [images]
        content: list[dict] = [{"type": "image"} for _ in images]
        content.append({"type": "text", "text": str(sample["problem"]) + self.prompt_suffix})
        system = [{"role": "system", "content": [{"type": "text", "text": str(sample["system"])}]}] if sample.get("system") else []
        return [*system, {"role": "user", "content": content}]

    def target(self, sample: Sample) -> str:
        answer = sample["answer"]
        # A list of acceptable answers demonstrates the first.
        if isinstance(answer, (list, tuple)):
            answer = answer[0]
        return self.answer_template.format(answer=answer)
