"""DriveLM challenge scorer on the official sample files."""
from __future__ import annotations

from pathlib import Path

import pytest

from mmpost.judge import Judge
from mmpost.eval.scorers import drivelm
from mmpost.registry import SCORERS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="module")
def predictions():
    folder = FIXTURES / "drivelm"
    assert (folder / "test_eval.json").is_file(), f"missing third-party fixture {folder / 'test_eval.json'}"
    data = drivelm.load_drivelm(folder)
    return drivelm.load_drivelm_predictions(folder / "output.json", data)


def test_sample_output_accuracy_is_zero_as_in_readme(predictions):
    result = drivelm.score_drivelm(predictions, judge=Judge(lambda prompt, system: "50"))
    assert len(predictions) == 66
    assert result["metrics"]["accuracy"] == 0.0  # README: "accuracy: 0.0"
    # the deterministic judge gives 50 to everything, so chatgpt is 50 and match is (F1 + 50) / 2
    assert result["metrics"]["chatgpt"] == 50.0
    assert result["metrics"]["match"] == pytest.approx((result["metrics"]["match_f1"] + 50) / 2)
    assert result["counts"]["judge_failed"] == 0


def test_no_judge_leaves_judge_parts_empty(predictions):
    result = drivelm.score_drivelm(predictions)
    assert result["metrics"]["chatgpt"] is None and result["metrics"]["final_score"] is None
    assert result["metrics"]["accuracy"] == 0.0


def test_non_numeric_judge_reply_is_a_counted_failure(predictions):
    result = drivelm.score_drivelm(predictions, judge=Judge(lambda prompt, system: "great answer"))
    assert result["metrics"]["chatgpt"] is None
    assert result["counts"]["judge_failed"] == result["breakdown"]["tag_counts"]["chatgpt"] + result["breakdown"]["tag_counts"]["match"]


def test_final_score_formula_reproduces_readme_numbers():
    language = {"val/Bleu_1": 0.0495223110147729, "val/Bleu_2": 0.00021977465683011536,
                "val/Bleu_3": 3.6312541763196866e-05, "val/Bleu_4": 1.4776149283286042e-05,
                "val/ROUGE_L": 0.08383567940883102, "val/CIDEr": 0.09901486412073952}
    assert drivelm.final_score(65.11111111111111, language, 28.25, 0.0) == pytest.approx(0.3240234750718823, abs=1e-12)


def test_match_f1_by_hand():
    ground_truth = "<c1,CAM_BACK,1088.3,497.5>, <c2,CAM_BACK,864.2,468.3> and <c3,CAM_FRONT,1043.2,82.2>"
    # first point 5+5=10 px from c1 (match), second 20 px from c2 (no match): TP=1, FP=1, FN=2
    matched, f1 = drivelm.match_objects("<c1,CAM_BACK,1093.3,502.5> <c2,CAM_BACK,884.2,468.3>", ground_truth)
    precision, recall = 1 / 2, 1 / 3
    assert matched == [(1088.3, 497.5)]
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-6)
    assert drivelm.match_objects("no objects", ground_truth)[1] == 0.0


def test_gating_skips_questions_about_unmatched_objects():
    base = {"tag": [0], "image_paths": {}, "scene": "s", "frame": "f"}
    items = [
        dict(base, id="s_f_0", first_in_frame=True, question="objects?", tag=[2],
             answer="<c1,CAM_FRONT,100.0,200.0> <c2,CAM_FRONT,500.0,500.0>", prediction="<c1,CAM_FRONT,101.0,201.0>"),
        dict(base, id="s_f_1", first_in_frame=False, question="Is <c1,CAM_FRONT,100.0,200.0> moving?", answer="A", prediction="A"),
        dict(base, id="s_f_2", first_in_frame=False, question="Is <c2,CAM_FRONT,500.0,500.0> moving?", answer="B", prediction="A"),
    ]
    result = drivelm.score_drivelm(items)
    assert result["counts"]["gated_out"] == 1  # c2 was never matched by the first answer
    assert result["metrics"]["accuracy"] == 1.0
    assert SCORERS.get("drivelm") is drivelm.score_drivelm
