"""DriveLM challenge scorer on the official sample files."""
from __future__ import annotations

from pathlib import Path

import pytest

from mmpost.judge import Judge
from mmpost.eval.scorers import caption_metrics, drivelm
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


# Official language metrics on the sample files, from pycocoevalcap 1.2 (the code bundled in
# bckim92/language-evaluation, which DriveLM's evaluation.py calls) with its Stanford PTBTokenizer
# 3.4.1 under Java 17, on the 9 tag-2 (prediction, GT) pairs: BLEU counts were
# testlen 1152, reflen 623, correct n-grams [229, 37, 5, 0].
OFFICIAL_SAMPLE_LANGUAGE = {"Bleu_1": 0.19878472222204968, "Bleu_2": 0.08021752318262533,
                            "Bleu_3": 0.03049990469169432, "Bleu_4": 2.240968392219611e-06,
                            "ROUGE_L": 0.18421722346531388, "CIDEr": 0.0017230094120258114}
README_SAMPLE_LANGUAGE = {"Bleu_1": 0.0495223110147729, "ROUGE_L": 0.08383567940883102, "CIDEr": 0.09901486412073952}


def _language(result):
    return {key.split("/", 1)[1]: value for key, value in result["metrics"].items() if key.startswith("language/")}


def test_python_language_metrics_reproduce_official_pycocoevalcap_on_sample(predictions):
    result = drivelm.score_drivelm(predictions, language_tokenizer="python")
    assert result["breakdown"]["tag_counts"]["language"] == 9
    language = _language(result)
    assert list(language) == list(OFFICIAL_SAMPLE_LANGUAGE)  # key order drives the language score
    for key, value in OFFICIAL_SAMPLE_LANGUAGE.items():
        assert language[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert "Python approximation" in result["notes"][0]


def test_readme_sample_language_numbers_are_not_from_the_checked_in_files(predictions):
    # Every tag-2 question is the first of its frame, so it is always scored whatever the gating:
    # the README's sample numbers cannot be explained by gating and belong to other files.
    assert all(item["first_in_frame"] for item in predictions if 2 in item["tag"])
    language = _language(drivelm.score_drivelm(predictions, language_tokenizer="python"))
    for key, value in README_SAMPLE_LANGUAGE.items():
        assert language[key] != pytest.approx(value, rel=0.1), key


@pytest.mark.skipif(not caption_metrics.java_tokenizer_available(), reason="needs pycocoevalcap and java")
def test_java_backend_gives_official_numbers_and_same_tokens(predictions):
    result = drivelm.score_drivelm(predictions, language_tokenizer="java")
    for key, value in OFFICIAL_SAMPLE_LANGUAGE.items():
        assert _language(result)[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    texts = [text for item in predictions if 2 in item["tag"] for text in (item["prediction"], item["answer"])]
    texts += ["(a) [b] {c} don't can't cannot it's \"quoted\" 1,000 item,5 3.5% $4 e.g. U.S.A. ok",
              "It's 10:30, a car's <c1,CAM_BACK,1088.3,497.5>. They'll go; we're I'm you've he'd",
              "left-turn, then go... ok -- fine - no 1.5x 2nd 3-way x/y a&b @home #1"]
    assert caption_metrics.tokenize_captions(texts, "java") == caption_metrics.tokenize_captions(texts, "python")


def test_ptb_like_tokenizer_rules_by_hand():
    tokenize = caption_metrics.ptb_like_tokenize
    assert tokenize("The car's ID is <c1,CAM_BACK,1088.3,497.5>.") == [
        "the", "car", "'s", "id", "is", "<", "c1", "cam_back", ",1088.3,497.5", ">"]
    # brackets survive: PTB writes -LRB-, -lowerCase makes it -lrb-, which the upper-case list misses
    assert tokenize("(Don't) \"stop\" - cannot!") == ["-lrb-", "do", "n't", "-rrb-", "stop", "can", "not"]
    assert tokenize("e.g. 1,000 cars at 10:30...") == ["e.g.", "1,000", "cars", "at", "10:30"]


def test_coco_metrics_by_hand():
    # hypothesis "a b c" vs reference "a b d": BLEU-1 = 2/3 (no brevity penalty, equal lengths),
    # BLEU-2 = sqrt(2/3 * 1/2); LCS = 2 so P = R = 2/3 and ROUGE-L = 2/3.
    scores = caption_metrics.coco_language_scores(["a b c"], ["a b d"], tokenizer="python")
    assert scores["Bleu_1"] == pytest.approx(2 / 3, rel=1e-9)
    assert scores["Bleu_2"] == pytest.approx((2 / 3 * 1 / 2) ** 0.5, rel=1e-9)
    assert scores["ROUGE_L"] == pytest.approx(2 / 3, rel=1e-9)
    # one reference: every n-gram has df 1, idf = log(1) - log(1) = 0, so CIDEr-D is 0
    assert scores["CIDEr"] == 0.0
    # two items: "x y" vs "x y" and "p" vs "q"; unigram df: x, y, q = 1 each; idf = log 2.
    # item 1: unigram and bigram cosines are 1, no length penalty; 3- and 4-grams are empty -> 0.
    # CIDEr_1 = (1 + 1 + 0 + 0) / 4 * 10 = 5; item 2 has no overlap -> 0; mean = 2.5
    assert caption_metrics.cider_d([["x", "y"], ["p"]], [["x", "y"], ["q"]]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="tokenizer"):
        caption_metrics.coco_language_scores(["a"], ["a"], tokenizer="nltk")
