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


LOCAL = Path(__file__).resolve().parent / "fixtures" / "mathvista"


def local_predictions(name: str, tmp_path: Path) -> Path:
    """A published outputs file kept gzip-compressed in tests/fixtures/mathvista (see its README)."""
    import gzip

    path = tmp_path / f"output_{name}.json"
    path.write_bytes(gzip.decompress((LOCAL / f"output_{name}.json.gz").read_bytes()))
    return path


def test_only_the_released_rule_reproduces_llavar(tmp_path):
    # The released calculate_score.py (int(float(x))) reproduces scores_llavar.json in full; the 2023 rule does not.
    predictions = mv.load_mathvista_predictions(local_predictions("llavar", tmp_path))
    published = json.loads((LOCAL / "scores_llavar.json").read_text())
    report = mv.score_mathvista(predictions, mode="official")["official_report"]
    assert all(report[key] == table for key, table in published.items())
    assert published["average"]["correct"] == 252
    assert mv.score_mathvista(predictions, mode="official_2023")["official_report"]["average"]["correct"] == 250


def test_rows_without_extraction_are_scored_wrong_when_asked(tmp_path):
    """output_chatgpt.json: pids 2 and 4 have no `extraction` and need the LLM step. Without a judge the scorer says
    how to proceed; with missing_extraction="wrong" they are unanswered and wrong, as in the published score."""
    predictions = mv.load_mathvista_predictions(local_predictions("chatgpt", tmp_path))
    with pytest.raises(JudgeUnavailableError, match="missing_extraction=wrong"):
        mv.score_mathvista(predictions)
    published = json.loads((LOCAL / "scores_chatgpt.json").read_text())
    for mode in ("official", "official_2023"):
        result = mv.score_mathvista(predictions, mode=mode, missing_extraction="wrong")
        report = result["official_report"]
        assert report["average"] == published["average"] == {"accuracy": "23.5", "correct": 235, "total": 1000}
        assert result["counts"]["missing_extraction"] == 2 and any("no extraction" in note for note in result["notes"])
        missing = [s for s in result["samples"] if s["extraction_method"] == "missing"]
        assert [s["id"] for s in missing] == ["2", "4"] and all(s["score"] == 0.0 and s["extracted"] is None for s in missing)
        # Every breakdown matches too, but one skill count: the outputs file lists "geometry reasoning" among pid 4's
        # skills, while the published table (like every other 2023 file but llavar) counts 222, not 223.
        for key, table in published.items():
            if key != "skills":
                assert report[key] == table, key
        assert {k: v for k, v in report["skills"].items() if k != "geometry reasoning"} == \
            {k: v for k, v in published["skills"].items() if k != "geometry reasoning"}
        assert (report["skills"]["geometry reasoning"]["total"], published["skills"]["geometry reasoning"]["total"]) == (223, 222)
    with pytest.raises(ValueError, match="missing_extraction"):
        mv.score_mathvista(predictions, missing_extraction="skip")


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
