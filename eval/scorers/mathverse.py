"""MathVerse testmini: the official two-stage LLM scoring (extract, then judge), per problem version.

Official scorer (ZrrSkywalker/MathVerse `evaluation/extract_answer_s1.py`, `score_answer_s2.py`,
`prompts.py`):
1. Extraction: the judge LLM gets a six-example demo, then `Model response: '<response>'` and
   `Extracted Answer: `; its reply, with any repeated "Extracted Answer: " removed and stripped, is
   the extraction. A missing `model_answer` is an empty response.
2. Judgement: the judge LLM gets a four-example consistency demo filled with the question, the
   standard answer and the extraction, and must reply "0" or "1" (after removing "Judgement:").
   With the official `--quick_match` flag every item is instead judged by exact string equality
   `answer == extraction` (`mode="quick_match"` here).
3. Accuracy overall, per `problem_version` (Text Dominant, Text Lite, Vision Intensive, Vision
   Dominant, Vision Only) and per subject / subfield (`metadata`).

Departures, all counted and reported, never silently replaced: the official scripts turn a failed
extraction call into "" and re-ask the judge forever until it answers 0/1. Here a failed call
(`judge_failed`) or a judgement reply that is not 0/1 (`judge_bad_format`) leaves the item unscored:
it is excluded from the accuracies, and the counts say how many. A fixed judge at temperature 0 with
a cache would return the same malformed reply on every retry, so retrying is left to the Judge.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmpost.judge import Judge, JudgeUnavailableError
from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, data_file, make_result, read_json_rows,
    resolve_media_path, sample_record,
)

NAME = "mathverse"
MODES = ("official", "quick_match")
QUERY_TYPES = ("query_wo", "query_cot")
RESPONSE_KEY = "model_answer"
ITEM_FIELDS = ("sample_index", "problem_version", "question", "answer")

# `prompts.py::demo_prompt_extract` (the official demo, including its inconsistent "Extracted answer"
# capitalisation in examples 5-6 and the unquoted response of example 6).
EXTRACT_DEMO = r"""
I am providing you a response from a model to a math problem, termed 'Model Response'. You should extract the answer from the response as 'Extracted Answer'. Directly output the extracted answer with no explanation.

1.
Model response: 'Rounded to two decimal places, the perimeter of the sector is approximately:\n\n(-2, 1)'
Extracted Answer: (-2, 1)

2.
Model response: 'at those points.\n\nTherefore, the correct option that represents the meaning of the intersection points of the graphs is:\n\nD. They give the solutions to the equation $f(t)=g(t)$.",'
Extracted Answer: D

3.
Model response: ' at 1 (there's a closed circle at y = 1), the range in interval notation is \\((-4, 1]\\).\n\nFinal values:\nDomain: \\((-3, 3]\\)\nRange: \\((-4, 1]\\)'
Extracted Answer: Domain: \\((-3, 3]\\)\nRange: \\((-4, 1]\\)

4.
Model response: 'As it stands, I cannot provide the correct option letter because there isn't enough information to solve for 'y'.'
Extracted Answer: null

5.
Model response: 'Given that AB = 17.6 meters, we can now substitute into the equation:\n\nd = 17.6 / cos(38\u00b0)\n\nTherefore, to one decimal place, the distance d between Ned and Bart is approximately 22.3 meters.'
Extracted answer: 22.3

6.
Model response:  have all the coefficients for the quadratic function:\n\\( f(x) = ax^2 + bx + c \\)\n\\( f(x) = -1x^2 - 2x + 1 \\)\n\nTherefore, the equation for the graphed function \\( f \\) is:\n\\( f(x) = -x^2 - 2x + 1 \\)"'
Extracted answer: f(x) = -x^2 - 2x + 1

7.
"""

# `prompts.py::demo_prompt_score`; a `str.format` template, so literal braces are doubled as there.
SCORE_DEMO = r"""
Below are two answers to a math question. Question is [Question], [Standard Answer] is the standard answer to the question, and [Model_answer] is the answer extracted from a model's output to this question.  Determine whether these two answers are consistent.
Please note that only when the [Model_answer] completely matches the [Standard Answer] means they are consistent. For non-multiple-choice questions, if the meaning is expressed in the same way, it is also considered consistent, for example, 0.5m and 50cm.
If they are consistent, Judement is 1; if they are different, Judement is 0.

[Question]: Write the set of numbers represented on the number line in interval notation.
[Standard Answer]: (-2,1]
[Model_answer] : Extracted Answer: \\((-2, 1)\\)
Judgement: 0

[Question]: Find the domain and range of the function f using interval notation.
[Standard Answer]: domain: [-4, 0) and range: (-3, 1]
[Model_answer] : Range: \\((-4, 1]\\)
Judgement: 0


[Question]: Two curves are symmetrical about the x-axis. Use the vertical line test to determine if this relation is a function.\nChoices:\nA:This is a function\nB:This is not a function
[Standard Answer]: B
[Model_answer] : This is not a function
Judgement: 1

[Question]: Given the graph of the ellipse that intersects with x-axis at 9 and -9 and with y-axis at 3 and -3, determine its equation.A. \\frac{{x^2}}{{81}} + \\frac{{y^2}}{{9}} = 1 B. Can not determine.\n
[Standard Answer]: A
[Model_answer] : \\frac{{x^2}}{{81}} + \\frac{{y^2}}{{9}} = 1
Judgement: 1

[Question]: {question}
[Standard Answer]: {gt}
[Model_answer] : {extraction}
Judgement: """
# The official demo strings are ordinary (non-raw) Python literals: "\\(" is one backslash and "\n"
# a newline, while "\u00b0" is the degree sign. Decode them the same way.
EXTRACT_DEMO = EXTRACT_DEMO.encode("latin-1", "backslashreplace").decode("unicode_escape")
SCORE_DEMO = SCORE_DEMO.encode("latin-1", "backslashreplace").decode("unicode_escape")


# -- data ------------------------------------------------------------------------------------------
def load_mathverse(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Read `testmini.json` (the HF `AI4Math/MathVerse` list of rows: sample_index, problem_index,
    problem_version, question, image, answer, question_type, metadata, query_wo, query_cot) from
    `data_dir`, or a JSON file path (e.g. `testmini_text_only.json`)."""
    rows = read_json_rows(data_file(data_dir, "testmini.json"), "MathVerse annotations", ITEM_FIELDS)
    return rows[:limit] if limit is not None else rows


def load_mathverse_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """The official output file (`output_templates/output_testmini.json`): rows with `model_answer`
    (a row without it is scored as an empty response, as the official script does)."""
    return read_json_rows(path, "MathVerse predictions", ITEM_FIELDS)


def item_id(item: dict, position: int) -> str:
    return str(item["sample_index"])


def media(item: dict, data_dir: Path) -> dict:
    if not item.get("image"):
        return {}  # the text-only split
    return {"images": [resolve_media_path(data_dir, item["image"], f"MathVerse sample {item['sample_index']}")]}


# -- prompts ---------------------------------------------------------------------------------------
def build_prompt(item: dict, query_type: str = "query_wo") -> str:
    """The dataset's own query: `query_wo` (answer directly, default) or `query_cot` (reason first)."""
    if query_type not in QUERY_TYPES:
        raise ValueError(f"MathVerse: query_type must be one of {QUERY_TYPES}, got {query_type!r}")
    if not item.get(query_type):
        raise BenchmarkDataError(f"MathVerse sample {item.get('sample_index')}: no `{query_type}` field")
    return item[query_type]


def extraction_prompt(response: str) -> str:
    return f"{EXTRACT_DEMO.strip()}\n\nModel response: '{response}'\nExtracted Answer: "


def judgement_prompt(item: dict, extraction: str) -> str:
    return SCORE_DEMO.strip().format(question=item["question"], gt=item["answer"], extraction=extraction)


def extract(item: dict, response: str, *, judge: Judge | None = None) -> str | None:
    """Stage 1: the judge's extraction (None after a counted judge failure)."""
    if judge is None:
        raise JudgeUnavailableError(f"MathVerse sample {item.get('sample_index')}: extraction needs a Judge (the "
                                    "official pipeline always asks an LLM)")
    reply = judge(extraction_prompt(response))
    return None if reply is None else reply.replace("Extracted Answer: ", "").strip()


def parse_judgement(reply: str | None) -> int | None:
    """0 or 1 from the judge's reply ("Judgement:" removed, stripped); None when it is neither."""
    if reply is None:
        return None
    text = reply.replace("Judgement:", "").strip()
    return int(text) if text in ("0", "1") else None


# -- scoring ---------------------------------------------------------------------------------------
def score_mathverse(predictions: list[dict], *, mode: str = "official", judge: Judge | None = None) -> dict:
    """Two-stage scoring (module docstring). Items that already carry `extraction` skip stage 1.

    Returns the common result dict; `metrics` has `accuracy` and `accuracy/<problem_version>`;
    `counts` has `judge_failed` (a judge call failed) and `judge_bad_format` (a judgement not 0/1).
    """
    check_mode(mode, MODES, NAME)
    scored: list[tuple[dict, bool]] = []
    samples = []
    judge_failed = bad_format = 0
    for position, item in enumerate(predictions):
        response = item.get(RESPONSE_KEY, "")
        if item.get("extraction") is not None:
            extraction: str | None = str(item["extraction"]).strip()
        else:
            extraction = extract(item, response, judge=judge)
        judgement: int | None = None
        if extraction is None:
            judge_failed += 1
        elif mode == "quick_match":
            judgement = int(item["answer"] == extraction)
        else:
            if judge is None:
                raise JudgeUnavailableError(f"MathVerse sample {item.get('sample_index')}: judging needs a Judge "
                                            "(or mode='quick_match' for exact string matching)")
            reply = judge(judgement_prompt(item, extraction))
            judgement = parse_judgement(reply)
            if reply is None:
                judge_failed += 1
            elif judgement is None:
                bad_format += 1
        if judgement is not None:
            scored.append((item, bool(judgement)))
        samples.append(sample_record(item_id(item, position), item.get("query_wo"), response, extraction, item["answer"],
                                     float(judgement or 0), judgement=judgement, problem_version=item["problem_version"]))
    total = len(predictions)
    correct = sum(ok for _, ok in scored)
    by_version = accuracy_table((item["problem_version"], ok) for item, ok in scored)
    metrics: dict[str, Any] = {"accuracy": correct / len(scored) if scored else None}
    metrics.update({f"accuracy/{version}": row["accuracy"] for version, row in by_version.items()})
    metadata = [(item.get("metadata") or item.get("category") or {}, ok) for item, ok in scored]
    breakdown = {
        "problem_version": by_version,
        "subject": accuracy_table((meta.get("subject"), ok) for meta, ok in metadata),
        "subfield": accuracy_table((f"{meta.get('subject')}/{meta.get('subfield')}", ok) for meta, ok in metadata),
    }
    unscored = total - len(scored)
    result = make_result(
        NAME, mode, metrics, total=total, answered=len(scored), unparseable=unscored, breakdown=breakdown,
        samples=samples, extra_counts={"correct": correct, "judge_failed": judge_failed, "judge_bad_format": bad_format},
        notes=[f"accuracy over the {len(scored)} judged items; {unscored} unscored (judge failure or malformed "
               "judgement) are excluded and counted"] if unscored else [],
    )
    if judge is not None:
        result["judge"] = judge.report()
    return result


SCORERS.add(NAME, score_mathverse)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_mathverse, build_prompt=build_prompt, extract=extract, score=score_mathverse,
    load_predictions=load_mathverse_predictions, modes=MODES, media=media, item_id=item_id,
    response_key=RESPONSE_KEY,
    description="MathVerse testmini (official LLM extraction + LLM judgement, per problem version)",
))
