"""MMAU test-mini (audio multiple choice): official word-set string match.

Official rule (Sakshi113/MMAU `evaluation.py`, `string_match`): tokens are the lower-cased `\\b\\w+\\b`
words. Distractor tokens are the words of every choice whose word set differs from the answer's,
minus the answer's words. A prediction is correct iff it has at least one token, contains every answer
token, and no distractor token. So a bare letter "A" is wrong, and "not a woman, a man" is wrong for
answer "Man" because "woman" is a distractor.

Quirks reproduced in `mode="official"`:
- the script reads the key `model_output` although the README tells users to write
  `model_prediction`; rows without `model_output` are *skipped* (left out of every denominator) and
  only counted in `counts["no_prediction"]`.
- accuracy is reported overall and per task (sound/music/speech), difficulty and sub-category.

`mode="lmms_eval"`: the prompt asks for a letter, the letter is parsed (MMMU-style
`parse_multi_choice_response`: "(X)", then " X ", then "X."; several -> the last one), mapped back to
the choice text and compared case-insensitively with the answer. lmms-eval picks a *random* letter
when nothing parses; here the random choice uses a fixed seed and every such item is counted in
`counts["unparseable"]`.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, data_file, make_result, option_letters,
    read_json_rows, resolve_media_path, sample_record,
)

NAME = "mmau"
MODES = ("official", "lmms_eval")
OUTPUT_KEY = "model_output"
ITEM_FIELDS = ("id", "question", "choices", "answer", "task", "difficulty")
_WORD = re.compile(r"\b\w+\b")


def load_mmau(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Read `mmau-test-mini.json` (a list of rows: id, audio_id, question, choices, answer (choice
    text), task, difficulty, category, sub-category, ...) from `data_dir`, or a JSON file path."""
    rows = _mmau_rows(data_file(data_dir, "mmau-test-mini.json"), "MMAU annotations")
    return rows[:limit] if limit is not None else rows


def _mmau_rows(path: str | Path, what: str) -> list[dict]:
    rows = read_json_rows(path, what, ITEM_FIELDS)
    for index, row in enumerate(rows):
        if not isinstance(row["choices"], list):
            raise BenchmarkDataError(f"{what}: {path} row {index}: `choices` must be a list of strings")
    return rows


def load_mmau_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """The official evaluation input: the test-mini rows, each with the model's text in `model_output`."""
    return _mmau_rows(path, "MMAU predictions")


def build_prompt(item: dict, *, mode: str = "official") -> str:
    """MMAU publishes no fixed inference prompt; this one lists the choices and asks for the choice
    text (what the official text match expects). `mode="lmms_eval"` asks for the option letter."""
    if mode == "lmms_eval":
        options = "\n".join(f"({letter}) {choice}" for letter, choice in zip(option_letters(len(item["choices"])), item["choices"]))
        return f"{item['question']}\n{options}\nAnswer with the option's letter from the given choices directly."
    options = "\n".join(f"- {choice}" for choice in item["choices"])
    return f"{item['question']}\nChoose the correct answer from the following options:\n{options}\nAnswer with the text of the option."


def word_set(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def string_match(answer: str, prediction: str, choices: list[str]) -> bool:
    """The official MMAU match (module docstring)."""
    prediction_tokens = word_set(prediction)
    answer_tokens = word_set(answer)
    if not prediction_tokens:
        return False
    distractors: set[str] = set()
    for choice in choices:
        choice_tokens = word_set(choice)
        if choice_tokens != answer_tokens:
            distractors |= choice_tokens - answer_tokens
    return answer_tokens <= prediction_tokens and prediction_tokens.isdisjoint(distractors)


def parse_multi_choice_letter(response: str, letters: list[str]) -> str | None:
    """lmms-eval/MMMU letter parser: "(X)", then " X ", then "X." candidates; the last-occurring wins."""
    text = " " + response.strip(" ,.!?;:'\"") + " "
    candidates = [letter for letter in letters if f"({letter})" in text]
    if not candidates:
        candidates = [letter for letter in letters if f" {letter} " in text]
    if not candidates:
        candidates = [letter for letter in letters if f"{letter}." in text]
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda letter: max(text.rfind(f"({letter})"), text.rfind(f" {letter} "), text.rfind(f"{letter}.")))


def extract(item: dict, output: str, *, mode: str = "official") -> str | None:
    """Official: the text itself (matching is on words). lmms_eval: the choice text of the parsed letter."""
    if mode == "official":
        return output
    letters = option_letters(min(len(item["choices"]), 4))  # lmms-eval only knows A-D
    letter = parse_multi_choice_letter(output, letters)
    return None if letter is None else item["choices"][letters.index(letter)]


def score_mmau(predictions: list[dict], *, mode: str = "official", seed: int = 0) -> dict:
    """Accuracy with task / difficulty / sub-category breakdowns (see module docstring)."""
    check_mode(mode, MODES, NAME)
    rng = random.Random(seed)
    scored: list[tuple[dict, bool]] = []
    samples = []
    no_prediction = unparseable = 0
    for item in predictions:
        if OUTPUT_KEY not in item:
            no_prediction += 1
            continue
        output = item[OUTPUT_KEY]
        if not isinstance(output, str):
            raise BenchmarkDataError(f"MMAU id {item.get('id')}: `{OUTPUT_KEY}` must be a string, got {type(output).__name__}")
        if mode == "official":
            extracted = output
            correct = string_match(item["answer"], output, item["choices"])
            if not word_set(output):
                unparseable += 1
        else:
            extracted = extract(item, output, mode=mode)
            if extracted is None:
                unparseable += 1
                extracted = rng.choice(item["choices"][:4])
            correct = extracted.lower().strip() == item["answer"].lower().strip()
        scored.append((item, correct))
        samples.append(sample_record(item["id"], build_prompt(item, mode=mode), output, extracted, item["answer"], float(correct)))
    total = len(scored)
    correct_count = sum(ok for _, ok in scored)
    breakdown = {
        "task": accuracy_table((item["task"], ok) for item, ok in scored),
        "difficulty": accuracy_table((item["difficulty"], ok) for item, ok in scored),
        "sub-category": accuracy_table((item.get("sub-category"), ok) for item, ok in scored if item.get("sub-category") is not None),
    }
    metrics = {"accuracy": correct_count / total if total else 0.0}
    metrics.update({f"accuracy/{task}": row["accuracy"] for task, row in breakdown["task"].items()})
    return make_result(
        NAME, mode, metrics, total=total, answered=total - unparseable, unparseable=unparseable,
        breakdown=breakdown, samples=samples,
        extra_counts={"correct": correct_count, "no_prediction": no_prediction},
        notes=[f"rows without `{OUTPUT_KEY}` are skipped (official script behaviour): {no_prediction}"],
    )


def media(item: dict, data_dir: Path) -> dict:
    """`audio_id` ("./test-mini-audios/<id>.wav") is relative to the folder of mmau-test-mini.json."""
    source = item.get("audio_id") or item.get("audio_path")
    if not source:
        raise BenchmarkDataError(f"MMAU id {item.get('id')}: no `audio_id` naming the audio file")
    return {"audios": [resolve_media_path(data_dir, source, f"MMAU id {item.get('id')}")]}


SCORERS.add(NAME, score_mmau)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_mmau, build_prompt=build_prompt, extract=extract, score=score_mmau,
    load_predictions=load_mmau_predictions, modes=MODES, modality="audio", media=media, response_key=OUTPUT_KEY,
    description="MMAU test-mini (official word-set string match)",
))
