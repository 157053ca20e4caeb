"""MMAU scorer on the official test-mini annotations with hand-made predictions."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mmpost.eval.scorers import mmau
from mmpost.registry import BENCHMARKS, SCORERS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="module")
def rows():
    path = FIXTURES / "mmau" / "mmau-test-mini.json"
    assert path.is_file(), f"missing third-party fixture {path}"
    return mmau.load_mmau(path.parent)


def test_answers_as_predictions_score_100(rows):
    predictions = [dict(row, model_output=row["answer"]) for row in rows]
    result = mmau.score_mmau(predictions)
    assert len(rows) == 1000
    assert result["metrics"]["accuracy"] == 1.0 and result["counts"]["total"] == 1000
    assert result["breakdown"]["task"]["sound"] == {"correct": 333, "total": 333, "accuracy": 1.0}
    assert result["breakdown"]["task"]["music"]["total"] == 334
    assert result["breakdown"]["difficulty"]["hard"]["total"] == 236


def test_string_match_rules_by_hand():
    choices = ["Man", "Woman", "Child", "Robot"]
    assert mmau.string_match("Man", "It is a man.", choices)
    assert not mmau.string_match("Man", "A", choices)  # letter only: answer word missing
    assert not mmau.string_match("Man", "not a woman, it is a man", choices)  # distractor word
    assert not mmau.string_match("Man", "", choices)
    # Shared words are not distractors: "White noise" vs "Wind blowing" share none, "noise" is needed.
    assert mmau.string_match("White noise", "white noise", ["Thunder", "White noise", "Wind blowing"])
    assert not mmau.string_match("White noise", "white", ["Thunder", "White noise", "Wind blowing"])


def test_partial_predictions_hand_computed(rows):
    first_ten = copy.deepcopy(rows[:10])
    predictions = []
    for index, row in enumerate(first_ten):
        if index < 6:  # 6 correct answers
            predictions.append(dict(row, model_output=f"The answer is {row['answer']}."))
        elif index < 8:  # 2 wrong: a different choice whose words differ from the answer
            wrong = next(c for c in row["choices"] if mmau.word_set(c) - mmau.word_set(row["answer"]))
            predictions.append(dict(row, model_output=wrong))
        else:  # 2 without `model_output`: skipped by the official script
            predictions.append(dict(row, model_prediction=row["answer"]))
    result = mmau.score_mmau(predictions)
    assert result["counts"]["total"] == 8 and result["counts"]["no_prediction"] == 2
    assert result["metrics"]["accuracy"] == pytest.approx(6 / 8)
    expected_by_task: dict[str, list[int]] = {}
    for index, row in enumerate(first_ten[:8]):
        counts = expected_by_task.setdefault(row["task"], [0, 0])
        counts[0] += index < 6
        counts[1] += 1
    for task, (correct, total) in expected_by_task.items():
        assert result["breakdown"]["task"][task]["correct"] == correct
        assert result["breakdown"]["task"][task]["total"] == total


def test_lmms_eval_mode_maps_letters(rows):
    row = rows[0]  # choices Man/Woman/Child/Robot, answer Man
    letter = "ABCD"[row["choices"].index(row["answer"])]
    result = mmau.score_mmau([dict(row, model_output=f"({letter})")], mode="lmms_eval")
    assert result["metrics"]["accuracy"] == 1.0
    official = mmau.score_mmau([dict(row, model_output=f"({letter})")])
    assert official["metrics"]["accuracy"] == 0.0  # a bare letter is wrong officially
    unparsed = mmau.score_mmau([dict(row, model_output="no idea")], mode="lmms_eval")
    assert unparsed["counts"]["unparseable"] == 1


def test_registered_and_errors(tmp_path):
    assert SCORERS.get("mmau") is mmau.score_mmau and BENCHMARKS.get("mmau").name == "mmau"
    with pytest.raises(ValueError, match="mmau-test-mini.json"):
        mmau.load_mmau(tmp_path)
    with pytest.raises(ValueError, match="mode"):
        mmau.score_mmau([], mode="vlmevalkit")
