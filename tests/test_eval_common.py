"""eval/common.py: the one reader of official JSON row files, with errors that name the file, the row and the field."""
import json

import pytest

from mmpost.eval.common import BenchmarkDataError, data_file, read_json_rows
from mmpost.registry import BENCHMARKS


def test_read_json_rows_names_the_file_row_and_field(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([{"response": "a", "answer": "b"}, {"response": "c"}]))
    assert read_json_rows(path, "X predictions", ["response"]) == [{"response": "a", "answer": "b"}, {"response": "c"}]
    with pytest.raises(BenchmarkDataError, match=r"X predictions: .*preds.json row 1: missing field\(s\) \['answer'\]"):
        read_json_rows(path, "X predictions", ["response", "answer"])
    path.write_text(json.dumps({"0": {"response": "a"}}))
    with pytest.raises(BenchmarkDataError, match="must hold a JSON list of rows, got dict"):
        read_json_rows(path, "X predictions")
    path.write_text(json.dumps(["response"]))
    with pytest.raises(BenchmarkDataError, match="row 0 must be a JSON object, got str"):
        read_json_rows(path, "X predictions", ["response"])
    with pytest.raises(BenchmarkDataError, match="file not found"):
        read_json_rows(tmp_path / "missing.json", "X predictions")


def test_every_list_shaped_prediction_reader_refuses_a_row_that_is_not_an_object(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(["not a row"]))
    for name in ("mathverse", "mmau", "mvbench", "refcoco", "screenspot", "wemath"):
        with pytest.raises(BenchmarkDataError, match=f"{path} row 0 must be a JSON object"):
            BENCHMARKS.get(name).load_predictions(path)


def test_data_file_takes_a_file_or_the_first_existing_name_in_a_folder(tmp_path):
    assert data_file(tmp_path / "a.json", "x.json") == tmp_path / "a.json"
    assert data_file(tmp_path, "testmini.json", "data/testmini.json") == tmp_path / "testmini.json"  # none exists
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "testmini.json").write_text("[]")
    assert data_file(tmp_path, "testmini.json", "data/testmini.json") == tmp_path / "data" / "testmini.json"
