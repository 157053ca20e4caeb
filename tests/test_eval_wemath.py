"""We-Math: the official answer rule and the four-dimensional metric on hand-made official-format rows."""
from __future__ import annotations

import json

import pytest

from mmpost.eval.common import BenchmarkDataError
from mmpost.eval.scorers.wemath import build_prompt, classify, extract, load_wemath, score_wemath


def right(letter: str = "A") -> str:
    return f"<Thought process>: the radius is 1 <Answer>: <<{letter}>>."


WRONG = "<Thought process>: unsure <Answer>: <<B>>."


def row(problem: str, key: str, correct: bool, concept: str = "Circles") -> dict:
    return {"ID": problem, "split": "testmini", "knowledge concept": concept, "question": f"{problem} {key}",
            "option": "A. 1;B. 2", "answer": "A", "image_path": f"{problem}-{key}.png", "key": key,
            "response": right() if correct else WRONG}


def composite(problem: str, steps: int, subs: list, multi: bool) -> list[dict]:
    rows = [row(problem, f"{steps}steps_{n}", ok) for n, ok in enumerate(subs, start=1) if ok is not None]
    return rows + [row(problem, f"{steps}steps_multi", multi)]


# (sub results, composite result) -> categories, worked out by hand from the official conditions:
# P1 TT/T: CM strict+loose; P2 TF/T: CM loose, RM strict; P3 FF/T: RM strict+loose; P4 TT/F: IG;
# P5 TF/F: IK; P6 FFF/F: IK; P7 TTT/T: CM strict+loose; P8 T-T/T (part 2 missing): CM loose only.
ROWS = (composite("2steps_1", 2, [True, True], True) + composite("2steps_2", 2, [True, False], True)
        + composite("2steps_3", 2, [False, False], True) + composite("2steps_4", 2, [True, True], False)
        + composite("2steps_5", 2, [True, False], False) + composite("3steps_1", 3, [False, False, False], False)
        + composite("3steps_2", 3, [True, True, True], True) + composite("3steps_3", 3, [True, None, True], True)
        # no `_1` row: the official left join never sees this problem
        + [row("2steps_9", "2steps_2", True), row("2steps_9", "2steps_multi", True)])


def test_official_answer_rule():
    assert extract(None, "<Thought process>: r = 1 <Answer>: <<B>>.") == "B"
    assert extract(None, "A. 1 cm") == "A"  # no "Answer": the whole text, first character
    assert extract(None, "The Answer is C") is None  # "is C" starts with "i"
    assert extract(None, "Answer: c") is None  # lower case is not an option
    assert extract(None, "Final answer: D") == "F"  # case-sensitive split: the official quirk, kept
    assert extract(None, "") is None
    assert extract(None, "Answer: A ... Answer: <D>") == "D"  # the last "Answer" wins


def test_classify_matches_official_conditions():
    assert classify([True, False], True) == {"IK": False, "IG": False, "CM_strict": False, "CM_loose": True,
                                             "RM_strict": True, "RM_loose": False}
    assert classify([None, True], False) == {"IK": False, "IG": False, "CM_strict": False, "CM_loose": False,
                                             "RM_strict": False, "RM_loose": False}


def test_four_dimensional_counts_scores_and_rates():
    result = score_wemath(ROWS)
    counts, metrics = result["counts"], result["metrics"]
    assert {k: counts[k] for k in ("IK", "IG", "CM_strict", "CM_loose", "RM_strict", "RM_loose", "composites")} == {
        "IK": 2, "IG": 1, "CM_strict": 2, "CM_loose": 4, "RM_strict": 2, "RM_loose": 1, "composites": 8}
    assert metrics["score_strict"] == pytest.approx((525 - 0.5 * 1 - 2 - 2) / 525)
    assert metrics["score_loose"] == pytest.approx((525 - 0.5 * 1 - 1 - 2) / 525)
    assert metrics["IK"] == pytest.approx(2 / 525) and metrics["IG"] == pytest.approx(1 / 525)
    assert metrics["CM_loose"] == pytest.approx(4 / 525)
    assert metrics["RM_strict"] == pytest.approx(2 / (2 + 2))  # RM over CM + RM of the same strictness
    assert metrics["RM_loose"] == pytest.approx(1 / (4 + 1))
    # one-step: 11 right of the 18 sub rows present in the 8 composites; two-step 3/5; three-step 2/3
    assert metrics["one_step_accuracy"] == pytest.approx(11 / 18)
    assert metrics["two_step_accuracy"] == pytest.approx(3 / 5)
    assert metrics["three_step_accuracy"] == pytest.approx(2 / 3)
    assert len(result["samples"]) == len(ROWS) and result["samples"][0]["id"] == "2steps_1/2steps_1"
    assert result["breakdown"]["knowledge_concept"]["Circles"]["total"] == 18


def test_custom_denominator_and_zero_rm_denominator():
    metrics = score_wemath(ROWS, total_composites=8)["metrics"]
    assert metrics["score_strict"] == pytest.approx((8 - 0.5 - 2 - 2) / 8)
    only_ig = score_wemath(composite("2steps_1", 2, [True, True], False))["metrics"]
    assert only_ig["RM_strict"] is None and only_ig["IG"] == pytest.approx(1 / 525)


def test_loader_validates_official_format(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "response"} for r in ROWS[:3]]
    (tmp_path / "testmini.json").write_text(json.dumps(rows))
    items = load_wemath(tmp_path)
    assert len(items) == 3 and "Option: A. 1;B. 2" in build_prompt(items[0])
    assert build_prompt(items[0]).endswith("<Answer>:<<your option>>.")
    (tmp_path / "testmini.json").write_text(json.dumps(rows + [rows[0]]))
    with pytest.raises(BenchmarkDataError, match="duplicate"):
        load_wemath(tmp_path)
    (tmp_path / "testmini.json").write_text(json.dumps([{**rows[0], "key": "4steps_1"}]))
    with pytest.raises(BenchmarkDataError, match="key"):
        load_wemath(tmp_path)
