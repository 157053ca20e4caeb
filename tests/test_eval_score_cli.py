"""score_command end to end on the real MathVista and Video-MME fixtures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmpost.eval.score_cli import score_command

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def test_mathvista_results_and_samples_files(tmp_path, capsys):
    predictions = FIXTURES / "mathvista" / "output_bard.json"
    assert predictions.is_file(), f"missing third-party fixture {predictions}"
    results = score_command("mathvista", str(predictions), None, str(tmp_path), mode="official_2023")
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["results"]["mathvista"]["mode"] == "official_2023"
    assert written["results"]["mathvista"]["counts"]["correct"] == 348  # scores_bard.json
    assert "python" in written["versions"]
    lines = (tmp_path / "samples_mathvista.jsonl").read_text().splitlines()
    assert len(lines) == 1000
    first = json.loads(lines[0])
    assert set(first) >= {"id", "prompt", "raw_output", "extracted", "target", "score"}
    assert "accuracy" in capsys.readouterr().out and results == written


def test_videomme_and_bad_mode(tmp_path):
    template = FIXTURES / "videomme" / "output_test_template.json"
    assert template.is_file(), f"missing third-party fixture {template}"
    results = score_command("videomme", str(template), None, str(tmp_path))
    assert results["results"]["videomme"]["metrics"]["accuracy"] == pytest.approx(7 / 9)
    with pytest.raises(ValueError, match="mode"):
        score_command("videomme", str(template), None, None, mode="vlmevalkit")


def test_drivelm_needs_data(tmp_path):
    folder = FIXTURES / "drivelm"
    assert folder.is_dir(), f"missing third-party fixture folder {folder}"
    with pytest.raises(ValueError, match="ground truth"):
        score_command("drivelm", str(folder / "output.json"), None, None)
    results = score_command("drivelm", str(folder / "output.json"), str(folder), str(tmp_path))
    assert results["results"]["drivelm"]["metrics"]["accuracy"] == 0.0


def test_rows_without_extraction_need_a_judge_or_the_option(tmp_path, capsys):
    """`mmpost eval score mathvista output_chatgpt.json`: a clear error, no traceback; with
    --score-arg mathvista.missing_extraction=wrong the published 23.5 with 2 rows counted."""
    import gzip

    from mmpost.cli import main

    predictions = tmp_path / "output_chatgpt.json"
    predictions.write_bytes(gzip.decompress((Path(__file__).parent / "fixtures" / "mathvista" / "output_chatgpt.json.gz").read_bytes()))
    assert main(["eval", "score", "mathvista", str(predictions)]) == 2
    error = capsys.readouterr().err
    assert "output_chatgpt.json: MathVista pid 2:" in error and "missing_extraction=wrong" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert main(["eval", "score", "mathvista", str(predictions), "--output", str(tmp_path / "out"),
                 "--score-arg", "mathvista.missing_extraction=wrong"]) == 0
    written = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["mathvista"]
    assert written["counts"]["missing_extraction"] == 2 and written["official_report"]["average"]["accuracy"] == "23.5"
