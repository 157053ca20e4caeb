"""Video-MME: official prompt, regex answer extraction and answered-only accuracy.

Official scorer (thanku-all/parse_answer `eval_your_results.py`, linked from BradyFU/Video-MME):
`extract_characters_regex` strips the response, deletes answer prefixes (list below), returns ""
when the rest has more than 10 words and no capital A-D, else the *first capital A, B, C or D
anywhere* ("Based on ..." gives "B"). Quirk kept: missing commas fuse "The best option is" +
"The correct option is" and "Best answer:" + "Best option:" into two strings, so those four
phrases are not removed on their own. An empty extraction is left out of numerator *and*
denominator: accuracy = correct / answered. Breakdowns: duration, video category (domain),
sub-category, task type.

`mode="lmms_eval"`: lmms-eval's `tasks/videomme/utils.py` copy has the prefix list without
"Answer:", "Option:", "The correct answer", "The correct option" (so "Answer: C" yields "A"), and
counts every question, parsed or not, in the denominator.

Input format: the official results JSON, a list of videos `{video_id, duration, domain,
sub_category, questions: [{question_id, task_type, question, options, answer, response}]}` (the
scorer also accepts the script's own keys `duration_category`, `video_category`, `video_subcategory`).
The released template has trailing commas, so it is read leniently.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, make_result, read_lenient_json, require_fields,
    resolve_media_path, sample_record,
)

NAME = "videomme"
MODES = ("official", "lmms_eval")
_FUSED_PREFIXES = [
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option is" "The correct option is",  # fused by a missing comma in the official list
    "Best answer:" "Best option:",  # likewise
]
OFFICIAL_PREFIXES = _FUSED_PREFIXES + ["Answer:", "Option:", "The correct answer", "The correct option"]
LMMS_EVAL_PREFIXES = list(_FUSED_PREFIXES)
_LETTER = re.compile(r"[ABCD]")

PROMPT_INSTRUCTION = ("Select the best answer to the following multiple-choice question based on the video. "
                      "Respond with only the letter (A, B, C, or D) of the correct option.")
PROMPT_INSTRUCTION_SUBTITLES = ("Select the best answer to the following multiple-choice question based on the video "
                                "and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.")


def _questions_from_videos(videos: Any, path: Path) -> list[dict]:
    if not isinstance(videos, list):
        raise BenchmarkDataError(f"Video-MME: {path} must hold a list of videos with `questions`, got {type(videos).__name__}")
    items = []
    for video_index, video in enumerate(videos):
        where = f"Video-MME {path} video {video_index}"
        require_fields(video, ["questions"], where)
        duration = video.get("duration", video.get("duration_category"))
        domain = video.get("domain", video.get("video_category"))
        sub_category = video.get("sub_category", video.get("video_subcategory"))
        if duration is None or domain is None:
            raise BenchmarkDataError(f"{where}: needs `duration` (or `duration_category`) and `domain` (or `video_category`)")
        for question in video["questions"]:
            require_fields(question, ["question_id", "task_type", "question", "options", "answer"], f"{where} question")
            item = {**question, "video_id": video.get("video_id", video.get("videoID")), "duration": duration,
                    "domain": domain, "sub_category": sub_category}
            if video.get("videoID"):
                item["videoID"] = video["videoID"]  # the YouTube id naming the video file in the HF release
            items.append(item)
    return items


def load_videomme(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Questions from an official-format JSON (`data_dir/videomme.json` or a file path), one item per question."""
    path = Path(data_dir)
    if path.is_dir():
        path = path / "videomme.json"
    items = _questions_from_videos(read_lenient_json(path, "Video-MME annotations"), path)
    return items[:limit] if limit is not None else items


def load_videomme_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """The official results file (questions carry `response`); trailing commas are tolerated."""
    path = Path(path)
    items = _questions_from_videos(read_lenient_json(path, "Video-MME predictions"), path)
    for item in items:
        if "response" not in item:
            raise BenchmarkDataError(f"Video-MME {path} question {item['question_id']}: missing `response`")
    return items


def build_prompt(item: dict, subtitles: str | None = None) -> str:
    """Official prompt (README): optional subtitle block, instruction, question, options, "The best answer is:"."""
    options = "\n".join(item["options"])
    if subtitles is not None:
        return (f"This video's subtitles are listed below:\n{subtitles}\n{PROMPT_INSTRUCTION_SUBTITLES}\n"
                f"{item['question']}\n{options}\nThe best answer is:")
    return f"{PROMPT_INSTRUCTION}\n{item['question']}\n{options}\nThe best answer is:"


def extract(item: dict | None, response: str, *, mode: str = "official") -> str:
    """Official `extract_characters_regex`; "" means unanswered."""
    text = response.strip()
    for prefix in OFFICIAL_PREFIXES if mode == "official" else LMMS_EVAL_PREFIXES:
        text = text.replace(prefix, "")
    if len(text.split()) > 10 and not _LETTER.search(text):
        return ""
    match = _LETTER.search(text)
    return match.group(0) if match else ""


def score_videomme(predictions: list[dict], *, mode: str = "official") -> dict:
    """Accuracy over answered questions (official) or all questions (lmms_eval), with breakdowns."""
    check_mode(mode, MODES, NAME)
    scored: list[tuple[dict, bool]] = []
    samples = []
    unparseable = 0
    for item in predictions:
        extracted = extract(item, item["response"], mode=mode)
        correct = extracted == item["answer"]
        samples.append(sample_record(item["question_id"], build_prompt(item), item["response"], extracted,
                                     item["answer"], float(correct)))
        if extracted == "":
            unparseable += 1
            if mode == "official":
                continue
        scored.append((item, correct))
    denominator = len(scored)
    correct_count = sum(ok for _, ok in scored)
    breakdown = {
        "duration": accuracy_table((item["duration"], ok) for item, ok in scored),
        "domain": accuracy_table((item["domain"], ok) for item, ok in scored),
        "sub_category": accuracy_table((item["sub_category"], ok) for item, ok in scored),
        "task_type": accuracy_table((item["task_type"], ok) for item, ok in scored),
    }
    return make_result(
        NAME, mode, {"accuracy": correct_count / denominator if denominator else 0.0},
        total=len(predictions), answered=len(predictions) - unparseable, unparseable=unparseable,
        breakdown=breakdown, samples=samples, extra_counts={"correct": correct_count, "denominator": denominator},
        notes=["official: unparsed answers are dropped from the denominator" if mode == "official"
               else "lmms_eval: unparsed answers count as wrong"],
    )


def media(item: dict, data_dir: Path) -> dict:
    """`<videoID>.mp4` (else `<video_id>.mp4`) under `data_dir`, `data_dir/videos` or `data_dir/data`
    (the HF zip layout)."""
    video = item.get("video_path") or f"{item.get('videoID') or item['video_id']}.mp4"
    return {"videos": [resolve_media_path(data_dir, video, f"Video-MME question {item['question_id']}",
                                          ("", "videos", "data"))]}


SCORERS.add(NAME, score_videomme)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_videomme, build_prompt=build_prompt, extract=extract, score=score_videomme,
    load_predictions=load_videomme_predictions, modes=MODES, modality="video", media=media,
    item_id=lambda item, position: str(item["question_id"]),
    description="Video-MME (official regex, answered-only accuracy)",
))
