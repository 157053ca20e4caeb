"""MathVista scorer against the published lupantech/MathVista results files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mmpost.judge import Judge, JudgeUnavailableError
from mmpost.eval.scorers import mathvista as mv
from mmpost.registry import BENCHMARKS, SCORERS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
MODELS = ["bard", "idefics_9b_instruct"]


def fixture(name: str) -> Path:
    path = FIXTURES / "mathvista" / name
    assert path.is_file(), f"missing third-party fixture {path} (expected /work/shared/fixtures/mathvista)"
    return path


@pytest.mark.parametrize("model", MODELS)
def test_published_scores_reproduced_exactly(model):
    predictions = mv.load_mathvista_predictions(fixture(f"output_{model}.json"))
    published = json.loads(fixture(f"scores_{model}.json").read_text())
    report = mv.score_mathvista(predictions, mode="official_2023")["official_report"]
    assert report["average"] == published["average"]
    for key, table in published.items():
        if key == "average":
            continue
        assert report[key] == table, key  # every category: accuracy string, correct, total
        accuracies = [float(row["accuracy"]) for row in report[key].values()]
        assert accuracies == sorted(accuracies, reverse=True)


@pytest.mark.parametrize("model", MODELS)
def test_stored_predictions_reproduced_per_item(model):
    predictions = mv.load_mathvista_predictions(fixture(f"output_{model}.json"))
    result = mv.score_mathvista(predictions, mode="official_2023")
    for item, sample in zip(predictions, result["samples"]):
        assert sample["extracted"] == item["prediction"], item["pid"]
        assert bool(sample["score"]) == item["true_false"], item["pid"]


def test_current_official_rule_truncates_integer_extractions():
    # idefics answered "0.999..." for pids 189 and 729 (answer "1"): int(float(x)) -> "1" is credited by
    # the current official code, while the 2023 rule (int(x) -> error -> None) scored them wrong.
    predictions = mv.load_mathvista_predictions(fixture("output_idefics_9b_instruct.json"))
    current = mv.score_mathvista(predictions)
    assert current["counts"]["correct"] == 198 + 2
    flipped = {s["id"] for s, item in zip(current["samples"], predictions) if bool(s["score"]) != item["true_false"]}
    assert flipped == {"189", "729"}
    assert current["metrics"]["accuracy"] == pytest.approx(0.200)
    bard = mv.score_mathvista(mv.load_mathvista_predictions(fixture("output_bard.json")))
    assert bard["official_report"]["average"]["correct"] == 348


def test_normalisation_rules_by_hand():
    choices = ["3/11", "8/11", "6/11", "3/5"]
    assert mv.normalize_extracted_answer("B", choices, "multi_choice", "text", None) == "8/11"
    assert mv.normalize_extracted_answer("(c) 6/11", choices, "multi_choice", "text", None) == "6/11"
    assert mv.normalize_extracted_answer("8/12", choices, "multi_choice", "text", None) == "8/11"  # Levenshtein 1
    assert mv.normalize_extracted_answer("", ["apple", "fig"], "multi_choice", "text", None) == "fig"  # nearest
    assert mv.normalize_extracted_answer("3.7", None, "free_form", "integer", None) == "3"
    assert mv.normalize_extracted_answer("3.7", None, "free_form", "integer", None, mode="official_2023") is None
    assert mv.normalize_extracted_answer("1.20", None, "free_form", "float", 1) == "1.2"
    assert mv.normalize_extracted_answer("1.256", None, "free_form", "float", 2.0) == "1.26"
    assert mv.normalize_extracted_answer("1.256", None, "free_form", "float", 2.0, mode="lmms_eval") is None
    assert mv.normalize_extracted_answer("abc", None, "free_form", "float", 1) is None


def test_prompt_builder_matches_dataset_queries():
    predictions = mv.load_mathvista_predictions(fixture("output_bard.json"))
    identical = 0
    revised = []
    for item in predictions:
        built = mv.build_prompt({k: v for k, v in item.items() if k != "query"})
        if built == item["query"]:
            identical += 1
        else:  # a few stored queries list the same choices in another order
            strip_letter = lambda line: re.sub(r"^\([A-Z]\) ", "", line)  # noqa: E731
            if sorted(map(strip_letter, built.splitlines())) != sorted(map(strip_letter, item["query"].splitlines())):
                revised.append(item["pid"])
    assert identical >= 980
    assert revised == ["272"]  # its stored choices were revised after the query was written


def test_extraction_shortcuts_and_judge():
    item = {"pid": "1", "question": "How many?", "question_type": "free_form", "answer_type": "integer",
            "choices": None, "precision": None, "answer": "4"}
    assert mv.extract(item, "4") == ("4", "integer")
    assert mv.extract(item, "") == ("", "empty")
    with pytest.raises(JudgeUnavailableError):
        mv.extract(item, "There are four.")
    prompts = []
    judge = Judge(lambda prompt, system: prompts.append(prompt) or "4")
    result = mv.score_mathvista([dict(item, response="There are four.")], judge=judge)
    assert result["metrics"]["accuracy"] == 1.0 and prompts[0].endswith("There are four.\n\nExtracted answer: ")
    failing = Judge(lambda prompt, system: 1 / 0)
    result = mv.score_mathvista([dict(item, response="There are four.")], judge=failing)
    assert result["counts"]["judge_failed"] == 1 and result["metrics"]["accuracy"] == 0.0
    assert failing.report()["failures"] == 1


def test_registered():
    assert SCORERS.get("mathvista") is mv.score_mathvista
    benchmark = BENCHMARKS.get("mathvista")
    assert benchmark.name == "mathvista" and benchmark.load is mv.load_mathvista


def test_loader_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="testmini.json"):
        mv.load_mathvista(tmp_path)
    bad = tmp_path / "output.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="pid -> problem"):
        mv.load_mathvista_predictions(bad)
