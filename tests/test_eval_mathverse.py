"""MathVerse: the official two-stage (extract, judge) scoring through mmpost.judge.Judge."""
from __future__ import annotations

import pytest

from mmpost.eval.scorers.mathverse import (
    EXTRACT_DEMO, build_prompt, extraction_prompt, judgement_prompt, parse_judgement, score_mathverse,
)
from mmpost.judge import Judge, JudgeUnavailableError


def item(index: str, version: str, response: str, answer: str = "14") -> dict:
    return {"sample_index": index, "problem_index": "685", "problem_version": version, "question": "Find L.",
            "image": "images_version_1-4/image_685.png", "answer": answer, "question_type": "free-form",
            "metadata": {"subject": "Solid Geometry", "subfield": "Length"},
            "query_wo": "Please directly answer the question.\nQuestion: Find L.",
            "query_cot": "Please first conduct reasoning.\nQuestion: Find L.", "model_answer": response}


def fake_judge(prompt: str, system: str | None) -> str:
    """Extraction: "14" from a response saying 14, "null" otherwise; a response containing "CRASH"
    makes the call fail. Judgement: "Judgement: 1" iff the extraction is 14, "maybe" for "15"."""
    if prompt.endswith("Extracted Answer: "):
        response = prompt.rsplit("Model response: '", 1)[1]
        if "CRASH" in response:
            raise ConnectionError("endpoint down")
        if "15" in response:
            return "Extracted Answer: 15"
        return "14" if "14" in response else "null"
    extraction = prompt.rsplit("[Model_answer] : ", 1)[1].split("\n")[0]
    return {"14": "Judgement: 1", "15": "maybe"}.get(extraction, "0")


def test_prompts_follow_the_official_templates():
    prompt = extraction_prompt("L = 14")
    assert prompt.startswith("I am providing you a response from a model to a math problem")
    assert prompt.endswith("7.\n\nModel response: 'L = 14'\nExtracted Answer: ")
    # the official demo is a plain Python string: "\\(" is one backslash, "\u00b0" the degree sign
    assert "Range: \\((-4, 1]\\)" in EXTRACT_DEMO and "cos(38\u00b0)" in EXTRACT_DEMO
    judged = judgement_prompt(item("1", "Text Lite", ""), "14 cm")
    assert "\\frac{x^2}{81}" in judged  # doubled braces of the format template become single
    assert judged.endswith("[Question]: Find L.\n[Standard Answer]: 14\n[Model_answer] : 14 cm\nJudgement:")
    assert build_prompt(item("1", "Text Lite", "")).startswith("Please directly")
    assert build_prompt(item("1", "Text Lite", ""), "query_cot").startswith("Please first")
    assert parse_judgement("Judgement: 1") == 1 and parse_judgement(" 0 ") == 0 and parse_judgement("yes") is None


def test_two_stage_scoring_counts_failures_without_replacing_them():
    rows = [item("1", "Text Dominant", "So L = 14 cm."), item("2", "Vision Only", "I cannot tell."),
            item("3", "Text Lite", "CRASH"), item("4", "Vision Intensive", "L is 15")]
    judge = Judge(local=fake_judge)
    result = score_mathverse(rows, judge=judge)
    assert result["metrics"]["accuracy"] == pytest.approx(1 / 2)  # 1 right of the 2 judged
    assert result["metrics"]["accuracy/Text Dominant"] == 1.0 and result["metrics"]["accuracy/Vision Only"] == 0.0
    assert "accuracy/Text Lite" not in result["metrics"]
    assert result["counts"]["judge_failed"] == 1 and result["counts"]["judge_bad_format"] == 1
    assert result["counts"]["answered"] == 2 and result["counts"]["total"] == 4
    assert [s["extracted"] for s in result["samples"]] == ["14", "null", None, "15"]
    assert [s["judgement"] for s in result["samples"]] == [1, 0, None, None]
    assert result["judge"]["failures"] == 1
    assert result["breakdown"]["subject"]["Solid Geometry"]["total"] == 2


def test_quick_match_given_extraction_and_missing_judge():
    calls = []

    def counting(prompt, system):
        calls.append(prompt)
        return fake_judge(prompt, system)

    rows = [item("1", "Text Dominant", "L = 14"), item("2", "Text Lite", "L = 14 cm")]
    rows[1]["extraction"] = "14 cm"  # a stage-1 result already present is used as is
    result = score_mathverse(rows, mode="quick_match", judge=Judge(local=counting))
    assert [s["judgement"] for s in result["samples"]] == [1, 0]  # exact string equality with "14"
    assert len(calls) == 1  # only item 1's extraction; quick match asks no judgement
    with pytest.raises(JudgeUnavailableError):
        score_mathverse([item("1", "Text Dominant", "14")])
