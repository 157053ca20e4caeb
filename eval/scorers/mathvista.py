"""MathVista testmini: official prompt, answer extraction, normalisation and scoring.

Official pipeline (lupantech/MathVista `evaluation/extract_answer.py`, `evaluation/calculate_score.py`):
1. extraction: shortcuts (empty response -> ""; a multiple-choice response equal to a choice; an
   integer/float question whose response parses as such), optionally the "quick extract" regex
   `The answer is "..."`, otherwise an LLM prompted with a few-shot demo (GPT-4 in the paper).
2. normalisation (`normalize_extracted_answer`): multi_choice -> the choice *text* (a letter or "(x)"
   maps to its choice, anything else to the choice with the smallest Levenshtein distance, so every
   multiple-choice item maps to some choice and an empty extraction maps to the nearest choice);
   integer -> `str(int(float(x)))` (truncates "3.7" to "3"); float -> `str(round(float(x),
   int(precision)))`; list -> `str(x)`; a failed conversion gives None (wrong).
3. `safe_equal`: Python `==` between the normalised prediction and the string `answer`.
4. accuracy over all items, plus breakdowns by question_type, answer_type, language, source,
   category, task, context, grade and skills (multi-label).

Which rule each mode follows, exactly (lupantech/MathVista; checked against every published
`results/*/scores_*.json` whose `output_*.json` is in the repository, tests/test_eval_mathvista.py):

- `official`: `evaluation/calculate_score.py` as released, from the first commit (ed0d56d, 2023-10-03) to
  HEAD (e999481): integers `str(int(float(x)))` (so "3.7" -> "3", "0.999" -> "0"), floats
  `str(round(float(x), int(precision)))` (the `int()` came in e999481, 2024-11-28; the GitHub files'
  precisions are ints, where it changes nothing), `--ignore_empty_extractions` off (its default), so an
  empty multiple-choice extraction maps to the nearest choice. Of the published files it alone reproduces
  `scores_llavar.json` (252; the 2023 rule gives 250).
- `official_2023`: integers parsed with `int(x)` alone, so a non-integer numeric extraction ("3.4",
  "0.999...") becomes None (wrong). No released version of calculate_score.py has this line, but most
  published 2023 score files were made with it: it alone reproduces idefics (198; `official` gives 200),
  chatgpt/gpt4 2-shot code (+OCR), chatgpt 2-shot solution +OCR, instruct_blip2 and mplugowl. It differs
  from `official` only on integer questions whose extraction is a non-integer number.
- The other published files (bard, claude, gpt4, chatgpt, llava, minigpt4, llama_adapter_v2, the random
  baselines, ...) have no such item and are reproduced by both. So no single mode reproduces every file.

A published outputs file may lack `extraction` on some rows (output_chatgpt.json: pids 2 and 4, whose
responses need the LLM extraction step; the released calculate_score.py stops there with a KeyError). With a
judge such rows are extracted as the official extract_answer.py would; without one, `missing_extraction=
"wrong"` (`--score-arg mathvista.missing_extraction=wrong`) applies the rule-based shortcuts and scores the
rest as unanswered and wrong, counted in `counts["missing_extraction"]`; that reproduces the published
accuracy of output_chatgpt.json (235 / 1000), whose scorer scored them wrong. The default ("judge") stops
with an error that says so.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, levenshtein, make_result, option_letters,
    read_json, require_fields, resolve_media_path, sample_record,
)
from mmpost.judge import Judge, JudgeUnavailableError

NAME = "mathvista"
MODES = ("official", "official_2023", "lmms_eval")
BREAKDOWN_KEYS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade", "skills")
PROBLEM_FIELDS = ("pid", "question", "choices", "question_type", "answer_type", "precision", "answer")

HINTS = {
    "multi_choice": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
    "float1": "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}

# Few-shot extraction demo. Reconstructed from the paper's answer-extraction table (task description
# + five examples); the official file is `evaluation/prompts/ext_ans.py`.
EXTRACTION_DEMO = """Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?
Choices:
(A) 3/11
(B) 8/11
(C) 6/11
(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B"""

_QUICK_EXTRACT = re.compile(r'The answer is "(.*)"\.')
_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")


# -- data ------------------------------------------------------------------------------------------
def load_mathvista(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Read the official `testmini.json` (GitHub `data/testmini.json`: {pid: problem}) from `data_dir`
    (or `data_dir/data`). `query.json` ({pid: prompt}) next to it, when present, fills `query`."""
    data_dir = Path(data_dir)
    candidates = [data_dir / "testmini.json", data_dir / "data" / "testmini.json"]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise BenchmarkDataError(f"MathVista: no testmini.json in {data_dir} or {data_dir / 'data'} "
                                 f"(expected the official {{pid: problem}} JSON from lupantech/MathVista data/)")
    problems = read_json(path, "MathVista annotations")
    if not isinstance(problems, dict):
        raise BenchmarkDataError(f"MathVista: {path} must map pid -> problem, got {type(problems).__name__}")
    query_path = path.with_name("query.json")
    queries = read_json(query_path, "MathVista queries") if query_path.is_file() else {}
    items = []
    for pid, problem in problems.items():
        require_fields(problem, PROBLEM_FIELDS, f"MathVista {path} pid {pid}")
        item = dict(problem)
        if pid in queries:
            item["query"] = queries[pid]
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    return items


def load_mathvista_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """Read an official `output_*.json` ({pid: problem + `response` [+ `extraction`]}).

    Items without `answer` take it from `data` (the annotations), as the official scorer does.
    """
    results = read_json(path, "MathVista predictions")
    if not isinstance(results, dict):
        raise BenchmarkDataError(f"MathVista: {path} must map pid -> problem (official output_*.json), "
                                 f"got {type(results).__name__}")
    answers = {str(item["pid"]): item for item in data or []}
    predictions = []
    for pid, problem in results.items():
        item = dict(problem)
        item.setdefault("pid", pid)
        if "answer" not in item and pid in answers:
            item["answer"] = answers[pid]["answer"]
        require_fields(item, PROBLEM_FIELDS, f"MathVista {path} pid {pid}")
        if "response" not in item and "extraction" not in item:
            raise BenchmarkDataError(f"MathVista {path} pid {pid}: needs `response` or `extraction`")
        predictions.append(item)
    return predictions


# -- prompt ----------------------------------------------------------------------------------------
def build_prompt(item: dict) -> str:
    """The official zero-shot prompt: the dataset's `query` when present, else built the same way
    (hint for the answer type, `Question: ... (Unit: u)`, `Choices:` lines `(A) ...`)."""
    if item.get("query"):
        return item["query"]
    if item["question_type"] == "multi_choice":
        hint = HINTS["multi_choice"]
    elif item["answer_type"] == "float":
        hint = HINTS[f"float{int(item['precision'])}"]
    else:
        hint = HINTS[item["answer_type"]]
    question = f"Question: {item['question']}"
    if item.get("unit"):
        question += f" (Unit: {item['unit']})"
    parts = [hint, question]
    if item.get("choices"):
        parts.append("\n".join(["Choices:"] + [f"({letter}) {choice}" for letter, choice in
                                               zip(option_letters(len(item["choices"])), item["choices"])]))
    return "\n".join(parts).strip()  # the released queries are stripped (trailing spaces in choices)


# -- extraction ------------------------------------------------------------------------------------
def extraction_prompt(item: dict, response: str) -> str:
    """The official judge prompt: demo, then the question and the response, then "Extracted answer: "."""
    return f"{EXTRACTION_DEMO.strip()}\n\n{item['question']}\n\n{response}\n\nExtracted answer: "


MISSING_EXTRACTION = ("judge", "wrong")


def extract(item: dict, response: str, *, judge: Judge | None = None, quick_extract: bool = False,
            missing_extraction: str = "judge") -> tuple[str | None, str]:
    """(extraction, method) following `extract_answer.py`; method in {empty, choice, integer, float,
    quick, judge, judge_failed, missing}. A judge failure yields "" like the official code, and is counted.
    Without a judge, a response that needs the LLM step raises, or with `missing_extraction="wrong"` gives
    (None, "missing"): unanswered, scored wrong."""
    if response == "":
        return "", "empty"
    if item["question_type"] == "multi_choice" and response in (item.get("choices") or []):
        return response, "choice"
    if item["answer_type"] == "integer":
        try:
            return str(int(response)), "integer"
        except ValueError:
            pass
    if item["answer_type"] == "float":
        try:
            return str(float(response)), "float"
        except ValueError:
            pass
    if quick_extract:
        match = _QUICK_EXTRACT.search(response)
        if match:
            return match.group(1), "quick"
    if judge is None:
        if missing_extraction == "wrong":
            return None, "missing"
        raise JudgeUnavailableError(
            f"MathVista pid {item.get('pid')}: the response needs the LLM extraction step (the row has no `extraction`); "
            "give a judge (--judge-endpoint/--judge-model), or score such rows as unanswered and wrong with "
            "--score-arg mathvista.missing_extraction=wrong (the published scores did that)"
        )
    reply = judge(extraction_prompt(item, response))
    return (reply, "judge") if reply is not None else ("", "judge_failed")


def normalize_extracted_answer(extraction: Any, choices: list | None, question_type: str, answer_type: str,
                               precision: Any, *, mode: str = "official") -> str | None:
    """Official `normalize_extracted_answer` (see module docstring); `mode="official_2023"` parses
    integers with `int(x)`; `mode="lmms_eval"` keeps a float `precision` as given to `round`, which
    raises and so yields None."""
    if question_type == "multi_choice":
        extraction = extraction.strip() if isinstance(extraction, str) else str(extraction)
        letters = _PAREN_LETTER.findall(extraction)
        if letters:
            extraction = letters[0].upper()
        options = option_letters(len(choices))
        if extraction in options:
            return choices[options.index(extraction)]
        distances = [levenshtein(extraction, choice) for choice in choices]
        return choices[distances.index(min(distances))]
    try:
        if answer_type == "integer":
            # The 2023 release parsed with int() alone, so "3.0" or "0.99" became None (wrong).
            return str(int(extraction)) if mode == "official_2023" else str(int(float(extraction)))
        if answer_type == "float":
            digits = precision if mode == "lmms_eval" else int(precision)
            return str(round(float(extraction), digits))
        if answer_type == "list":
            return str(extraction)
    except (TypeError, ValueError, OverflowError):
        return None
    return extraction


def is_correct(prediction: str | None, answer: str, *, mode: str = "official") -> bool:
    if mode == "lmms_eval" and isinstance(prediction, str) and isinstance(answer, str):
        return prediction.strip() == answer.strip()
    return prediction == answer


# -- scoring ---------------------------------------------------------------------------------------
def official_score_report(rows: list[tuple[dict, bool]]) -> dict:
    """The `scores_*.json` structure of the published results: average accuracy as
    `str(round(100 * acc, 2))`, per-category accuracies as `"%.2f"` strings, categories sorted by
    accuracy (descending, ties in first-seen order)."""
    correct = sum(ok for _, ok in rows)
    total = len(rows)
    report: dict[str, Any] = {"average": {"accuracy": str(round(correct / total * 100, 2)) if total else "0.0",
                                          "correct": correct, "total": total}}
    for key in BREAKDOWN_KEYS:
        table = accuracy_table((_category_value(item, key), ok) for item, ok in rows)
        formatted = {value: {"accuracy": f"{row['accuracy'] * 100:.2f}", "correct": row["correct"], "total": row["total"]}
                     for value, row in table.items()}
        report[key] = dict(sorted(formatted.items(), key=lambda entry: float(entry[1]["accuracy"]), reverse=True))
    return report


def _category_value(item: dict, key: str) -> Any:
    if key in ("question_type", "answer_type"):
        return item.get(key)
    metadata = item.get("metadata") or {}
    return metadata.get(key, [] if key == "skills" else None)


def score_mathvista(predictions: list[dict], *, mode: str = "official", judge: Judge | None = None,
                    quick_extract: bool = False, missing_extraction: str = "judge") -> dict:
    """Accuracy over all predictions with the official breakdowns.

    Args:
        predictions: problems (official output_*.json entries) with `response`; an `extraction`
            already present (the official pipeline's stage-1 output) is used as is.
        mode: "official" (default), "official_2023" (the rule behind the published scores files) or
            "lmms_eval" (see module docstring).
        judge: LLM for items that still need extraction; a missing judge raises, a failed call is
            counted in `counts["judge_failed"]` and the item gets "" as in the official code.
        missing_extraction: "judge" (default) or "wrong": without a judge, rows with no `extraction`
            whose response needs the LLM step are unanswered and wrong, counted in
            `counts["missing_extraction"]` (how the published scores treated them).
    Returns the common result dict; `official_report` holds the scores_*.json structure.
    """
    check_mode(mode, MODES, NAME)
    if missing_extraction not in MISSING_EXTRACTION:
        raise ValueError(f"MathVista: missing_extraction must be one of {MISSING_EXTRACTION}, got {missing_extraction!r}")
    rows: list[tuple[dict, bool]] = []
    samples = []
    methods: dict[str, int] = {}
    for item in predictions:
        if "extraction" in item and item["extraction"] is not None:
            extraction, method = item["extraction"], "given"
        else:
            extraction, method = extract(item, item.get("response", ""), judge=judge, quick_extract=quick_extract,
                                         missing_extraction=missing_extraction)
        methods[method] = methods.get(method, 0) + 1
        # A missing extraction is no answer at all (not even the nearest choice of a multiple-choice item).
        prediction = None if method == "missing" else normalize_extracted_answer(
            extraction, item.get("choices"), item["question_type"], item["answer_type"], item.get("precision"), mode=mode)
        ok = is_correct(prediction, item["answer"], mode=mode)
        rows.append((item, ok))
        samples.append(sample_record(item["pid"], build_prompt(item), item.get("response"), prediction,
                                     item["answer"], float(ok), extraction=extraction, extraction_method=method))
    total = len(rows)
    correct = sum(ok for _, ok in rows)
    unparseable = sum(1 for sample in samples if sample["extracted"] is None)
    breakdown = {key: accuracy_table((_category_value(item, key), ok) for item, ok in rows) for key in BREAKDOWN_KEYS}
    result = make_result(
        NAME, mode, {"accuracy": correct / total if total else 0.0}, total=total, answered=total - unparseable,
        unparseable=unparseable, breakdown=breakdown, samples=samples,
        extra_counts={"correct": correct, "judge_failed": methods.get("judge_failed", 0),
                      "missing_extraction": methods.get("missing", 0)},
        notes=["accuracy over all items; multiple-choice extractions always map to some choice (Levenshtein)"]
        + ([f"{methods['missing']} rows had no extraction and needed the LLM step: scored unanswered and wrong "
            "(missing_extraction=wrong)"] if methods.get("missing") else []),
    )
    result["official_report"] = official_score_report(rows)
    result["extraction_methods"] = methods
    if judge is not None:
        result["judge"] = judge.report()
    return result


def _extract_for_registry(item: dict, output: str, **kwargs: Any) -> str | None:
    extraction, method = extract(item, output, **kwargs)
    if method == "missing":
        return None
    return normalize_extracted_answer(extraction, item.get("choices"), item["question_type"], item["answer_type"],
                                      item.get("precision"))


def media(item: dict, data_dir: Path) -> dict:
    """`image` ("images/<pid>.jpg") is relative to the folder holding `data/` (or to `data/` itself)."""
    if not item.get("image"):
        return {}
    return {"images": [resolve_media_path(data_dir, item["image"], f"MathVista pid {item['pid']}")]}


SCORERS.add(NAME, score_mathvista)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_mathvista, build_prompt=build_prompt, extract=_extract_for_registry,
    score=score_mathvista, load_predictions=load_mathvista_predictions, modes=MODES, media=media,
    item_id=lambda item, position: str(item["pid"]),
    description="MathVista testmini (official extraction + normalisation, exact match)",
))
