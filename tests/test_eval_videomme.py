"""Video-MME scorer on the official output template (not strict JSON)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmpost.eval.scorers import videomme
from mmpost.registry import SCORERS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="module")
def template() -> Path:
    path = FIXTURES / "videomme" / "output_test_template.json"
    assert path.is_file(), f"missing third-party fixture {path}"
    return path


def test_template_is_not_strict_json_but_loads(template):
    with pytest.raises(json.JSONDecodeError):
        json.loads(template.read_text())
    items = videomme.load_videomme_predictions(template)
    assert [item["question_id"] for item in items][:3] == ["001-1", "001-2", "001-3"] and len(items) == 9


def test_template_scores_by_hand(template):
    items = videomme.load_videomme_predictions(template)
    # responses vs answers: C/C, D./A, "D. 3"/D, "Answer: C. Jade."/C, D/D, "D. 13"/B, B/B, C./C, D.../D
    official = videomme.score_videomme(items)
    assert [s["extracted"] for s in official["samples"]] == ["C", "D", "D", "C", "D", "D", "B", "C", "D"]
    assert official["metrics"]["accuracy"] == pytest.approx(7 / 9)
    assert official["breakdown"]["task_type"]["Counting Problem"] == {"correct": 3, "total": 4, "accuracy": 0.75}  # 001-1, 001-3, 002-3 (wrong), 003-1
    # lmms-eval's prefix list lacks "Answer:", so the "A" of "Answer" is read as the option.
    lmms = videomme.score_videomme(items, mode="lmms_eval")
    assert lmms["samples"][3]["extracted"] == "A"
    assert lmms["metrics"]["accuracy"] == pytest.approx(6 / 9)


def test_extraction_quirks():
    assert videomme.extract(None, "Based on the video, the answer is C") == "B"  # first capital A-D
    assert videomme.extract(None, "The best answer is D.") == "D"
    long_no_letter = "the person in the video is clearly walking towards the door of the old house"
    assert videomme.extract(None, long_no_letter) == ""
    assert videomme.extract(None, "Best option: C") == "B"  # "Best option:" is only removed fused


def test_unanswered_dropped_from_denominator_only_officially():
    base = {"task_type": "OCR Problems", "question": "q", "options": ["A. x", "B. y", "C. z", "D. w"],
            "duration": "short", "domain": "Knowledge", "sub_category": "Law"}
    items = [dict(base, question_id="1", answer="A", response="A"),
             dict(base, question_id="2", answer="B", response="i really cannot tell from these frames what happens here at all")]
    assert videomme.score_videomme(items)["metrics"]["accuracy"] == 1.0
    assert videomme.score_videomme(items)["counts"]["unparseable"] == 1
    assert videomme.score_videomme(items, mode="lmms_eval")["metrics"]["accuracy"] == 0.5


def test_prompt_and_registry():
    item = {"question": "What?", "options": ["A. a", "B. b", "C. c", "D. d"]}
    prompt = videomme.build_prompt(item)
    assert prompt.endswith("What?\nA. a\nB. b\nC. c\nD. d\nThe best answer is:")
    assert videomme.build_prompt(item, subtitles="hello").startswith("This video's subtitles are listed below:\nhello\n")
    assert SCORERS.get("videomme") is videomme.score_videomme
