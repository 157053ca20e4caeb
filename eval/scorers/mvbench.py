"""MVBench: official `check_ans` (OpenGVLab/Ask-Anything `video_chat2/mvbench.ipynb`).

The prediction is lower-cased and its first space-separated token kept; the ground-truth option is
"(x)". Correct iff the token with dots removed is a substring of "(x)", or "(x)" is a substring of the
token. So "(B) dog", "B." and "b" are correct for "(b)", "The answer is B" is wrong, and an empty
prediction or a lone "(" counts as correct (it is a substring of every option) - reproduced, and
counted in `counts["empty_credited"]`. The official prompt pre-fills "Best option:(" so answers
start with a letter. Accuracy per task and overall.

Mode "lmms_eval" reproduces lmms-eval's `tasks/mvbench/utils.py` instead (`lmms_eval_letter`): a
response "X. text" gives X; otherwise punctuation is cleaned VQA-style and the first standalone
letter A-E (case-insensitive, so the article "a" counts) is the answer, else the cleaned text; the
GT letter goes through the same function. Literally empty responses leave the denominator.
"""
from __future__ import annotations

import re
from pathlib import Path

from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, make_result, option_letters, read_json, read_json_rows,
    resolve_media_path, sample_record,
)

NAME = "mvbench"
MODES = ("official", "lmms_eval")
SYSTEM_PROMPT = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
                 "movement of objects, and the action and pose of persons. Based on your observations, select the best "
                 "option that accurately addresses the question.")


def check_ans(prediction: str, ground_truth: str) -> bool:
    """The official check; `ground_truth` is "(X) text" or "(X)"."""
    tokens = prediction.lower().split(" ")
    first = tokens[0] if tokens else ""
    option = ground_truth.lower().split(" ")[0]
    return first.replace(".", "") in option or option in first


_LMMS_OPTION_PREFIX = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_LMMS_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_LMMS_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
_LMMS_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_LMMS_STANDALONE_LETTER = re.compile(r"\b([A-E])\b", re.IGNORECASE)
# lmms-eval passes re.UNICODE (= 32) as the positional `count` of re.sub, so only 32 periods go.
_LMMS_PERIOD_LIMIT = int(re.UNICODE)


def _lmms_clean_punctuation(text: str) -> str:
    """VQA-style cleaning: a mark next to a space (or any text with a digit,digit pattern) is deleted,
    otherwise replaced by a space; then up to 32 periods not followed by a digit are deleted."""
    drop_all = _LMMS_DIGIT_COMMA_DIGIT.search(text) is not None
    cleaned = text
    for mark in _LMMS_PUNCTUATION:
        delete = drop_all or f"{mark} " in text or f" {mark}" in text
        cleaned = cleaned.replace(mark, "" if delete else " ")
    return _LMMS_PERIOD_NOT_BEFORE_DIGIT.sub("", cleaned, count=_LMMS_PERIOD_LIMIT)


def lmms_eval_letter(text: str) -> str:
    """lmms-eval's MVBench normaliser (`mcq_acc.process`): upper-case option letter or cleaned text."""
    prefixed = _LMMS_OPTION_PREFIX.match(text.strip())
    if prefixed:
        return prefixed.group(1).upper()
    cleaned = _lmms_clean_punctuation(text.replace("\n", " ").replace("\t", " ").strip())
    cleaned = cleaned.strip("'").strip('"').strip(")").strip("(").strip().lower()
    letter = _LMMS_STANDALONE_LETTER.search(cleaned)
    return letter.group(1).upper() if letter else cleaned


def load_mvbench(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Every `json/<task>.json` (rows {video, question, candidates, answer}) under `data_dir`."""
    folder = Path(data_dir) / "json"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise BenchmarkDataError(f"MVBench: no task files json/<task>.json under {data_dir}")
    items = []
    for path in files:
        for index, row in enumerate(read_json_rows(path, "MVBench task", ["question", "candidates", "answer"])):
            items.append({**row, "task": path.stem, "id": f"{path.stem}_{index}"})
    return items[:limit] if limit is not None else items


def load_mvbench_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    return read_json_rows(path, "MVBench predictions", ["candidates", "answer", "response", "task"])


def ground_truth_option(item: dict) -> str:
    letter = option_letters(len(item["candidates"]))[item["candidates"].index(item["answer"])]
    return f"({letter}) {item['answer']}"


def build_prompt(item: dict) -> str:
    """User turn: question, options "(A) ..." and "Only give the best option."; the assistant turn is
    pre-filled with "Best option:(" (append it after the chat template)."""
    options = "\n".join(f"({letter}) {candidate}" for letter, candidate in zip(option_letters(len(item["candidates"])), item["candidates"]))
    return f"Question: {item['question']}\nOptions:\n{options}\nOnly give the best option."


def extract(item: dict, output: str) -> str:
    return output.lower().split(" ")[0]


def _score_lmms_eval(predictions: list[dict]) -> dict:
    rows, samples = [], []
    empty = 0
    for index, item in enumerate(predictions):
        letter = option_letters(len(item["candidates"]))[item["candidates"].index(item["answer"])]
        predicted = lmms_eval_letter(item["response"])
        correct = predicted == lmms_eval_letter(letter)
        if item["response"] == "":
            empty += 1  # lmms-eval's aggregate skips literally empty answers
        else:
            rows.append((item["task"], correct))
        samples.append(sample_record(item.get("id", index), build_prompt(item), item["response"], predicted, letter,
                                     float(correct), counted=item["response"] != ""))
    answered = len(rows)
    correct_count = sum(ok for _, ok in rows)
    table = accuracy_table(rows)
    return make_result(NAME, "lmms_eval", {"accuracy": correct_count / answered if answered else 0.0,
                                           "task_average": sum(r["accuracy"] for r in table.values()) / len(table) if table else 0.0},
                       total=len(predictions), answered=answered, unparseable=0, breakdown={"task": table}, samples=samples,
                       extra_counts={"correct": correct_count, "empty_dropped": empty},
                       notes=["lmms-eval scoring: empty responses are dropped from the denominator"])


def score_mvbench(predictions: list[dict], *, mode: str = "official") -> dict:
    """Accuracy per task and overall; mode "official" (check_ans) or "lmms_eval" (see module docstring)."""
    check_mode(mode, MODES, NAME)
    if mode == "lmms_eval":
        return _score_lmms_eval(predictions)
    rows, samples = [], []
    empty_credited = 0
    for index, item in enumerate(predictions):
        target = ground_truth_option(item)
        correct = check_ans(item["response"], target)
        empty_credited += correct and extract(item, item["response"]).replace(".", "") in ("", "(")
        rows.append((item["task"], correct))
        samples.append(sample_record(item.get("id", index), build_prompt(item), item["response"], extract(item, item["response"]), target, float(correct)))
    total = len(rows)
    correct_count = sum(ok for _, ok in rows)
    table = accuracy_table(rows)
    return make_result(NAME, mode, {"accuracy": correct_count / total if total else 0.0,
                                    "task_average": sum(r["accuracy"] for r in table.values()) / len(table) if table else 0.0},
                       total=total, answered=total, unparseable=0, breakdown={"task": table}, samples=samples,
                       extra_counts={"correct": correct_count, "empty_credited": empty_credited})


def media(item: dict, data_dir: Path) -> dict:
    """The task JSONs name videos relative to a per-task folder that the official notebook hard-codes;
    `data_dir/video_roots.json` ({task: folder}) supplies it, else `data_dir/video/<task>/` and
    `data_dir/video/` are tried."""
    data_dir = Path(data_dir)
    roots_file = data_dir / "video_roots.json"
    roots = read_json(roots_file, "MVBench video roots") if roots_file.is_file() else {}
    folders = [roots[item["task"]]] if item["task"] in roots else [f"video/{item['task']}", "video"]
    return {"videos": [resolve_media_path(data_dir, item["video"], f"MVBench {item['id']}", folders)]}


SCORERS.add(NAME, score_mvbench)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_mvbench, build_prompt=build_prompt, extract=extract, score=score_mvbench,
    load_predictions=load_mvbench_predictions, modes=MODES, description="MVBench (official check_ans)",
    modality="video", media=media, system_prompt=SYSTEM_PROMPT, assistant_prefix="Best option:(", response_prefix="(",
))
