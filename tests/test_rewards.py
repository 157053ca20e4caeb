"""Built-in rewards and answer parsing, on hand-made completions with values worked out by hand."""
from __future__ import annotations

import math
import threading

import pytest

from mmpost.registry import REWARDS
from mmpost.rewards import combine_rewards
from mmpost.rewards.builtin import (
    answer_tag_format,
    box_iou,
    box_iou_value,
    choice_match,
    exact_match,
    math_match,
    point_in_box,
    think_answer_format,
)
from mmpost.rewards.parsing import extract_answer_tag, extract_boxed, normalize_text, parse_box, parse_point
from mmpost.types import DataError


def score(reward, completions, sample, **args):
    """Score several completions against one sample."""
    return reward(completions, [sample] * len(completions), **args)


# ---- parsing -----------------------------------------------------------------------------------
def test_extract_answer_tag_takes_the_last_complete_tag_stripped():
    assert extract_answer_tag("<answer> a </answer> then <answer>\nB\n</answer>") == "B"
    assert extract_answer_tag("<answer>two\nlines</answer>") == "two\nlines"
    assert extract_answer_tag("<answer></answer>") == ""
    assert extract_answer_tag("no tag at all") is None
    assert extract_answer_tag("<answer>never closed") is None
    # an unclosed last tag leaves the earlier complete one
    assert extract_answer_tag("<answer>1</answer><answer>2") == "1"


def test_extract_boxed_matches_nested_braces_and_takes_the_last():
    assert extract_boxed(r"so \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert extract_boxed(r"\boxed{2} wait, \boxed{ {a}+{b} }") == "{a}+{b}"
    assert extract_boxed(r"\boxed{1} then \boxed{\frac{3}{4") is None  # truncated last box
    assert extract_boxed("42") is None


def test_parse_point_reads_the_first_pair_in_matching_brackets():
    assert parse_point("click (3, 4) then (5, 6)") == (3.0, 4.0)
    assert parse_point("[1.5,-2]") == (1.5, -2.0)
    assert parse_point("at ( 10.5 , 20 )") == (10.5, 20.0)
    assert parse_point("(1, 2]") is None
    assert parse_point("[1, 2, 3, 4]") is None
    assert parse_point("nothing") is None


def test_parse_box_reads_the_first_quadruple():
    assert parse_box("box [10, 20, 30, 40] or [0, 0, 1, 1]") == (10.0, 20.0, 30.0, 40.0)
    assert parse_box("(1.5,2,3,4.25)") == (1.5, 2.0, 3.0, 4.25)
    assert parse_box("[30, 40, 10, 20]") == (30.0, 40.0, 10.0, 20.0)  # as written
    assert parse_box("(3, 4)") is None
    assert parse_box("[1, 2, 3]") is None


def test_normalize_text():
    assert normalize_text("  The   Answer.  ") == "the answer"
    assert normalize_text("3...") == "3"
    assert normalize_text("Red\n\tCar", lowercase=False) == "Red Car"


# ---- format rewards ----------------------------------------------------------------------------
def test_answer_tag_format_requires_exactly_one_tag_spanning_the_output():
    completions = [
        "<answer>red</answer>",
        "  <answer>red</answer>\n",
        "<answer>two\nlines</answer>",
        "<answer>a</answer><answer>b</answer>",
        "I think <answer>red</answer>",
        "<answer>red</answer> done",
        "<answer>red",
        "red",
    ]
    assert score(answer_tag_format, completions, {}) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # R1-AQA's literal fullmatch of `<answer>.*?</answer>` accepts two adjacent tags
    assert score(answer_tag_format, ["<answer>a</answer><answer>b</answer>"], {}, single=False) == [1.0]


def test_think_answer_format():
    completions = [
        "<think>x\ny</think>\n<answer>3</answer>",
        "<think></think><answer>3</answer>",
        " <think>x</think> <answer>3</answer> ",
        "<answer>3</answer>",
        "<think>x</think><answer>3</answer> trailing",
        "<answer>3</answer><think>x</think>",
    ]
    assert score(think_answer_format, completions, {}) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


# ---- answer matching ---------------------------------------------------------------------------
def test_exact_match_normalises_and_prefers_the_last_answer_tag():
    sample = {"id": "s", "answer": "red"}
    completions = [
        "<answer> Red. </answer>",
        "red",
        "<answer>blue</answer> no, <answer>red</answer>",
        "<answer>red</answer><answer>blue</answer>",
        "<answer>reddish</answer>",
        "the answer is red",
    ]
    assert score(exact_match, completions, sample) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert score(exact_match, ["<answer>Red</answer>", "<answer>red</answer>"], sample, case_sensitive=True) == [0.0, 1.0]


def test_exact_match_accepts_lists_numbers_and_other_fields():
    assert score(exact_match, ["Three", "3", "4"], {"answer": ["3", "three"]}) == [1.0, 1.0, 0.0]
    assert score(exact_match, ["<answer>3</answer>"], {"answer": 3}) == [1.0]
    assert score(exact_match, ["<answer>cat</answer>"], {"answer": "dog", "label": "cat"}, field="label") == [1.0]
    with pytest.raises(DataError, match="'x1'.*'answer'"):
        exact_match(["a"], [{"id": "x1"}])


def test_rewards_refuse_unpaired_inputs():
    with pytest.raises(ValueError, match="2 completions but 1 samples"):
        exact_match(["a", "b"], [{"answer": "a"}])


def test_choice_match_accepts_letters_and_option_text():
    choices = ["cat", "dog", "bird"]
    completions = ["B", "(B)", "B.", "<answer>b</answer>", "dog", "<answer>Dog.</answer>", "B. dog", "A. dog", "C", "D", "fish"]
    expected = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert score(choice_match, completions, {"answer": "dog", "choices": choices}) == expected
    assert score(choice_match, completions, {"answer": "B", "choices": choices}) == expected
    assert score(choice_match, ["B"], {"answer": "B"}) == [None]
    with pytest.raises(DataError, match="neither one of its choices"):
        choice_match(["B"], [{"id": "q", "answer": "fish", "choices": choices}])


def test_math_match_checks_equivalence_not_spelling():
    half = {"answer": "0.5"}
    completions = [
        r"<answer>\frac{1}{2}</answer>",
        r"so the result is \boxed{\frac{1}{2}}",
        r"\boxed{2} no wait \boxed{0.5}",
        "<answer>1/2</answer>",
        "<answer>0.25</answer>",
        "",
    ]
    assert score(math_match, completions, half) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert score(math_match, ["<answer>0.5</answer>"], {"answer": r"\frac{1}{2}"}) == [1.0]
    assert score(math_match, [r"<answer>\sqrt{2}</answer>", "<answer>1.5</answer>"], {"answer": r"$\sqrt{2}$"}) == [1.0, 0.0]
    assert score(math_match, ["The answer: \\boxed{3}"], {"answer": r"\boxed{3}"}) == [1.0]


def test_math_match_falls_back_to_text_when_nothing_parses():
    assert score(math_match, ["<answer>Red.</answer>", "<answer>blue</answer>"], {"answer": "red"}) == [1.0, 0.0]
    assert score(math_match, ["<answer>4</answer>"], {"answer": ["four", "4"]}) == [1.0]


def test_math_match_works_off_the_main_thread():
    # math_verify's timeouts use signal.alarm, which raises outside the main thread; the reward
    # moves the comparison to a spawned process instead.
    results = []
    worker = threading.Thread(
        target=lambda: results.append(score(math_match, [r"<answer>\frac{1}{2}</answer>", "<answer>3</answer>"], {"answer": "0.5"}))
    )
    worker.start()
    worker.join(timeout=120)
    assert results == [[1.0, 0.0]]


# ---- boxes and points --------------------------------------------------------------------------
def test_box_iou_value_by_hand():
    # [0,0,2,2] and [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    assert box_iou_value((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou_value((2, 2, 0, 0), (1, 1, 3, 3)) == pytest.approx(1 / 7)  # swapped corners
    assert box_iou_value((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou_value((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # empty union


def test_shared_geometry_by_hand():
    from mmpost.rewards import geometry

    # Corners as given: a swapped box has negative width, so its IoU differs from the ordered one.
    assert geometry.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert geometry.box_iou((0, 0, 4, 1), (1, 0, 2, 1)) == pytest.approx(1 / 4)  # B inside A: |B| / |A|
    assert geometry.ordered_box((2, 3, 0, 1)) == (0, 1, 2, 3)
    assert geometry.point_in_box((2, 3), (0, 1, 2, 3)) and not geometry.point_in_box((2.01, 3), (0, 1, 2, 3))
    assert geometry.box_centre((0, 1, 2, 5)) == (1.0, 3.0)
    assert geometry.xywh_to_xyxy((1, 2, 3, 4)) == (1.0, 2.0, 4.0, 6.0)
    # (5, 6) to the box [0, 0, 2, 2]: dx = 3, dy = 4 -> 5; inside -> 0.
    assert geometry.distance_to_box((5, 6), (0, 0, 2, 2)) == 5.0 and geometry.distance_to_box((1, 1), (0, 0, 2, 2)) == 0.0


def test_box_iou_reward():
    sample = {"id": "g", "answer": "[0, 0, 10, 10]", "box": [0, 0, 10, 10]}
    completions = ["<answer>[0, 0, 10, 10]</answer>", "[0,0,10,5]", "(0, 0, 10, 4)", "<answer>somewhere</answer>"]
    assert score(box_iou, completions, sample) == pytest.approx([1.0, 0.5, 0.4, 0.0])
    assert score(box_iou, completions, sample, threshold=0.5) == [1.0, 1.0, 0.0, 0.0]
    assert score(box_iou, ["[0, 0, 10, 10]"], {"answer": [0, 0, 20, 10]}) == pytest.approx([0.5])  # answer as a box
    assert score(box_iou, ["[0, 0, 10, 10]"], {"answer": "red"}) == [None]
    with pytest.raises(DataError, match="'box' must be"):
        box_iou(["[0, 0, 1, 1]"], [{"id": "b", "box": [1, 2]}])


def test_point_in_box_includes_the_edges():
    sample = {"box": [10, 20, 30, 40]}
    completions = ["(10, 20)", "<answer>(30, 40)</answer>", "[20, 30]", "(30.01, 40)", "[5, 30]", "(20, 41)", "no point"]
    assert score(point_in_box, completions, sample) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert score(point_in_box, ["(1, 1)"], {"answer": "left"}) == [None]


# ---- combining and registration ----------------------------------------------------------------
def test_combine_rewards_weights_parts_and_counts_none_as_zero():
    parts = {"acc": [1.0, 0.0, None, 1.0], "fmt": [1.0, 1.0, 0.0, math.nan], "logged_only": [5.0, 5.0, 5.0, 5.0]}
    # acc*1 + fmt*0.5: [1 + 0.5, 0 + 0.5, 0 + 0, 1 + 0]
    assert combine_rewards(parts, {"acc": 1.0, "fmt": 0.5}) == [1.5, 0.5, 0.0, 1.0]
    assert combine_rewards({}, {}) == []
    with pytest.raises(ValueError, match="not computed"):
        combine_rewards(parts, {"iou": 1.0})
    with pytest.raises(ValueError, match="different lengths"):
        combine_rewards({"a": [1.0], "b": [1.0, 2.0]}, {"a": 1.0})


def test_builtins_resolve_by_name():
    for name, function in [
        ("answer_tag_format", answer_tag_format),
        ("think_answer_format", think_answer_format),
        ("exact_match", exact_match),
        ("choice_match", choice_match),
        ("math_match", math_match),
        ("box_iou", box_iou),
        ("point_in_box", point_in_box),
    ]:
        assert REWARDS.get(name) is function
