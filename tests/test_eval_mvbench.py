"""MVBench scorer: lmms-eval mode (lmms-eval `tasks/mvbench/utils.py::mcq_acc`) vs the official check_ans."""
from __future__ import annotations

import pytest

from mmpost.eval.scorers import mvbench


def _item(response: str, task: str = "action_count") -> dict:
    return {"candidates": ["cat", "dog", "bird"], "answer": "dog", "response": response, "task": task,
            "question": "What runs?"}


@pytest.mark.parametrize("response, letter", [
    ("B. dog", "B"),                # "X. text" prefix
    ("b. a dog", "B"),
    ("(B) dog", "B"),               # cleaned to "b dog", first standalone letter
    ("The answer is B", "B"),       # the official check_ans gets this wrong
    ("A dog is running", "A"),      # the article "a" is a standalone letter: picked first
    ("dog", "dog"),                 # no letter: the cleaned text itself
    ("", ""),
    ("B.\nmore", "B"),              # the "X. text" rule: \s* spans the newline
])
def test_lmms_eval_letter_by_hand(response, letter):
    assert mvbench.lmms_eval_letter(response) == letter


def test_lmms_eval_punctuation_rules_by_hand():
    # "-" has no space next to it -> replaced by a space; "," next to a space -> deleted
    assert mvbench._lmms_clean_punctuation("left-turn, ok") == "left turn ok"
    # a digit,digit pattern deletes every mark; "." before a digit survives, others are deleted
    assert mvbench._lmms_clean_punctuation("1,000-x 3.5.") == "1000x 3.5"
    # only the first 32 periods are removed (re.UNICODE passed as count in lmms-eval)
    assert mvbench._lmms_clean_punctuation("." * 40) == "." * 8


def test_lmms_eval_mode_drops_empty_responses_and_differs_from_official():
    items = [_item("B. dog"), _item("The answer is B"), _item("A dog"), _item(""), _item("C", task="object_shuffle")]
    lmms = mvbench.score_mvbench(items, mode="lmms_eval")
    # answered = 4 (empty dropped); correct: "B. dog", "The answer is B" -> 2 / 4
    assert lmms["counts"]["answered"] == 4 and lmms["counts"]["empty_dropped"] == 1
    assert lmms["metrics"]["accuracy"] == pytest.approx(2 / 4)
    # per task: action_count 2/3, object_shuffle 0/1 -> mean 1/3
    assert lmms["breakdown"]["task"]["action_count"]["accuracy"] == pytest.approx(2 / 3)
    assert lmms["metrics"]["task_average"] == pytest.approx((2 / 3 + 0) / 2)
    official = mvbench.score_mvbench(items, mode="official")
    # official: "B. dog" -> "b" in "(b)" ok; "The answer is B" -> "the" no; "A dog" -> "a" no; "" -> credited; "C" no
    assert official["metrics"]["accuracy"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="vlmevalkit"):
        mvbench.score_mvbench(items, mode="vlmevalkit")
