"""We-Math testmini: official answer rule and the four-dimensional metric (IK, IG, CM, RM).

Official scorer (We-Math/We-Math `evaluation/four_dimensional_metrics.py`, `evaluation/accuracy.py`;
VLMEvalKit's `vlmeval/dataset/utils/wemath.py` is a copy):

1. Per row ("joker"): take the response text after the last "Answer", strip, delete every `<`, `>`,
   `:` and `.`, strip again; the first character, if it is one of A-H, is the prediction; correct iff
   it equals `answer`. Anything else (empty, a lower-case letter, a digit) is wrong.
2. Rows are joined into composite problems: `ID` names the problem ("2steps_7") and `key` the part
   ("2steps_1", "2steps_2", ["3steps_3",] "2steps_multi"). A composite exists when its `_1` row does
   (the official left join starts from the `_1` rows); a missing part is neither right nor wrong
   (pandas NaN), so it satisfies no condition that tests it.
3. Per composite, with subs = the one-step parts and multi = the composite question:
   - IK (insufficient knowledge): some sub wrong and multi wrong;
   - IG (inadequate generalisation): all subs right and multi wrong;
   - CM (complete mastery): multi right and all subs right (strict) / any sub right (loose);
   - RM (rote memorisation): multi right and any sub wrong (strict) / all subs wrong (loose).
   Strict RM and loose CM overlap by construction (the official definitions).
4. Score = (525 - 0.5 IG - RM - IK) / 525 (strict and loose), 525 being the number of composite
   problems in testmini, a constant in the official code. Rates: IK, IG, CM over 525; RM over
   (CM + RM) of the same strictness.
5. Accuracy (`accuracy.py`): one-step = mean correctness of the sub rows of the composites; two-step /
   three-step = mean correctness of the composite questions. Per knowledge concept over sub rows
   (the official file further groups concepts by its knowledge tree; that table is not shipped here).

With `--limit` (or any subset) the 525 denominator still applies, as in the official code; the
number of composites actually present is reported in `counts["composites"]`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, data_file, make_result, read_json_rows,
    resolve_media_path, sample_record,
)

NAME = "wemath"
MODES = ("official",)
TOTAL_COMPOSITES = 525
ITEM_FIELDS = ("ID", "question", "option", "answer", "key")
_KEY = re.compile(r"^([23])steps_(\d+|multi)$")
_STRIPPED = re.compile(r"[<>:.]")

# The inference prompt of the official repository's example scripts (whitespace normalised).
PROMPT_TEMPLATE = (
    "Now, we require you to solve a multiple-choice math question.\n"
    "Please briefly describe your thought process and provide the final answer(option).\n"
    "Question: {question}\n"
    "Option: {option}\n"
    "Regarding the format, please answer following the template below, and be sure to include two <> symbols:\n"
    "<Thought process>:<<your thought process>>\n"
    "<Answer>:<<your option>>."
)


# -- data ------------------------------------------------------------------------------------------
def load_wemath(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Read the official `testmini.json` (a list of rows: ID, split, knowledge concept, question,
    option, answer (letter), image_path, key, ...) from `data_dir`, `data_dir/data`, or a file path."""
    rows = _wemath_rows(data_file(data_dir, "testmini.json", "data/testmini.json"), "We-Math annotations")
    return rows[:limit] if limit is not None else rows


def _wemath_rows(path: str | Path, what: str, fields: Sequence[str] = ITEM_FIELDS) -> list[dict]:
    rows = read_json_rows(path, what, fields)
    seen: set[tuple[str, str]] = set()
    for index, row in enumerate(rows):
        if not _KEY.match(str(row["key"])):
            raise BenchmarkDataError(f"{what}: {path} row {index}: `key` {row['key']!r} is not '<2|3>steps_<n|multi>'")
        identity = (str(row["ID"]), str(row["key"]))
        if identity in seen:
            # The official pandas join would silently multiply such rows; refuse them instead.
            raise BenchmarkDataError(f"{what}: {path} row {index}: duplicate (ID, key) {identity}")
        seen.add(identity)
    return rows


def load_wemath_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """The official evaluation input: the testmini rows, each with the model's text in `response`."""
    return _wemath_rows(path, "We-Math predictions", [*ITEM_FIELDS, "response"])


def item_id(item: dict, position: int) -> str:
    """Rows share `ID` across the parts of one problem, so the part (`key`) completes the id."""
    return f"{item['ID']}/{item['key']}"


def media(item: dict, data_dir: Path) -> dict:
    if not item.get("image_path"):
        return {}
    # image_path is relative to the folder holding testmini.json (the official `data/`).
    return {"images": [resolve_media_path(data_dir, item["image_path"], f"We-Math {item_id(item, 0)}")]}


# -- prompt and extraction -------------------------------------------------------------------------
def build_prompt(item: dict) -> str:
    return PROMPT_TEMPLATE.format(question=item["question"], option=item["option"])


def extract(item: dict | None, response: str) -> str | None:
    """The official rule: text after the last "Answer", `<>:.` removed, first character if in A-H."""
    if not isinstance(response, str):
        return None
    tail = _STRIPPED.sub("", response.split("Answer")[-1].strip()).strip()
    return tail[0] if tail and tail[0] in "ABCDEFGH" else None


# -- the four dimensions ---------------------------------------------------------------------------
def _parse_key(key: str) -> tuple[int, str]:
    match = _KEY.match(key)
    assert match is not None  # validated on load
    return int(match.group(1)), match.group(2)


def composites(rows: list[tuple[dict, bool]]) -> list[dict]:
    """Join parts into composite problems: [{steps, id, subs: [True/False/None], multi: True/False/None,
    sub_items: [item or None]}], one per `_1` row, in first-seen order."""
    parts: dict[tuple[int, str], dict[str, tuple[dict, bool]]] = {}
    order: list[tuple[int, str]] = []
    for item, correct in rows:
        steps, part = _parse_key(str(item["key"]))
        problem = (steps, str(item["ID"]))
        if problem not in parts:
            parts[problem] = {}
            order.append(problem)
        parts[problem][part] = (item, correct)
    joined = []
    for steps, problem_id in order:
        found = parts[(steps, problem_id)]
        if "1" not in found:
            continue
        subs = [found[str(n)][1] if str(n) in found else None for n in range(1, steps + 1)]
        sub_items = [found[str(n)][0] if str(n) in found else None for n in range(1, steps + 1)]
        multi = found["multi"][1] if "multi" in found else None
        joined.append({"steps": steps, "id": problem_id, "subs": subs, "multi": multi, "sub_items": sub_items})
    return joined


def classify(subs: list[bool | None], multi: bool | None) -> dict[str, bool]:
    """The official conditions for one composite; None (a missing part) is neither right nor wrong."""
    all_right = all(s is True for s in subs)
    any_right = any(s is True for s in subs)
    all_wrong = all(s is False for s in subs)
    any_wrong = any(s is False for s in subs)
    return {
        "IK": any_wrong and multi is False,
        "IG": all_right and multi is False,
        "CM_strict": all_right and multi is True,
        "CM_loose": any_right and multi is True,
        "RM_strict": any_wrong and multi is True,
        "RM_loose": all_wrong and multi is True,
    }


def four_dimensional_metrics(counts: dict[str, int], total: int = TOTAL_COMPOSITES) -> dict[str, float | None]:
    """Scores and rates (fractions, not percentages) from the per-category composite counts."""
    def ratio(numerator: int, denominator: int) -> float | None:
        return numerator / denominator if denominator else None

    return {
        "score_strict": (total - 0.5 * counts["IG"] - counts["RM_strict"] - counts["IK"]) / total,
        "score_loose": (total - 0.5 * counts["IG"] - counts["RM_loose"] - counts["IK"]) / total,
        "IK": counts["IK"] / total,
        "IG": counts["IG"] / total,
        "CM_strict": counts["CM_strict"] / total,
        "CM_loose": counts["CM_loose"] / total,
        "RM_strict": ratio(counts["RM_strict"], counts["CM_strict"] + counts["RM_strict"]),
        "RM_loose": ratio(counts["RM_loose"], counts["CM_loose"] + counts["RM_loose"]),
    }


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def score_wemath(predictions: list[dict], *, mode: str = "official", total_composites: int = TOTAL_COMPOSITES) -> dict:
    """Four-dimensional metrics, step accuracies and per-concept accuracy (module docstring)."""
    check_mode(mode, MODES, NAME)
    rows: list[tuple[dict, bool]] = []
    samples = []
    unparseable = 0
    for position, item in enumerate(predictions):
        extracted = extract(item, item.get("response"))
        correct = extracted is not None and extracted == item["answer"]
        unparseable += extracted is None
        rows.append((item, correct))
        samples.append(sample_record(item_id(item, position), build_prompt(item), item.get("response"), extracted,
                                     item["answer"], float(correct), key=item["key"]))
    joined = composites(rows)
    counts = {name: 0 for name in ("IK", "IG", "CM_strict", "CM_loose", "RM_strict", "RM_loose")}
    for composite in joined:
        for name, hit in classify(composite["subs"], composite["multi"]).items():
            counts[name] += hit
    metrics: dict[str, Any] = four_dimensional_metrics(counts, total_composites)
    sub_rows = [(sub_item, ok) for c in joined for sub_item, ok in zip(c["sub_items"], c["subs"]) if ok is not None]
    metrics["one_step_accuracy"] = _mean([ok for _, ok in sub_rows])
    metrics["two_step_accuracy"] = _mean([c["multi"] for c in joined if c["steps"] == 2 and c["multi"] is not None])
    metrics["three_step_accuracy"] = _mean([c["multi"] for c in joined if c["steps"] == 3 and c["multi"] is not None])
    metrics["accuracy"] = _mean([ok for _, ok in rows])
    breakdown = {
        "knowledge_concept": accuracy_table((item.get("knowledge concept"), ok) for item, ok in sub_rows),
        "four_dimensional_counts": dict(counts),
    }
    notes = [f"scores use the official constant denominator {total_composites}; composites present: {len(joined)}"]
    return make_result(NAME, mode, metrics, total=len(rows), answered=len(rows) - unparseable, unparseable=unparseable,
                       breakdown=breakdown, samples=samples, notes=notes,
                       extra_counts={"correct": sum(ok for _, ok in rows), "composites": len(joined), **counts})


SCORERS.add(NAME, score_wemath)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_wemath, build_prompt=build_prompt, extract=extract, score=score_wemath,
    load_predictions=load_wemath_predictions, modes=MODES, media=media, item_id=item_id,
    description="We-Math testmini (official answer rule; IK/IG/CM/RM and Score, strict and loose)",
))
