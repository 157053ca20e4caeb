"""JSONL / save_to_disk rows: lazy access, errors naming file:line and field, skipping bad rows, sampler resume."""
import json

import pytest

from mmpost.data import PromptSampler, load_rows
from mmpost.types import DataError


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_rows_are_parsed_on_access_with_root_and_source(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "problem": "p", "answer": "1", "images": ["x.png"]},
                                              {"id": "b", "problem": "q", "answer": "2"}])
    rows = load_rows(path, required=("id", "problem", "answer"))
    assert len(rows) == 2
    assert rows[1]["answer"] == "2"
    assert rows[0]["_root"] == str(tmp_path)
    assert rows[1]["_source"] == f"{path}:2"


def test_missing_answer_names_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "problem": "p", "answer": "1"}, {"id": "b", "problem": "q"}])
    with pytest.raises(DataError) as error:
        load_rows(path, required=("id", "problem", "answer"))
    assert f"{path}:2" in str(error.value) and "'b'" in str(error.value) and "answer" in str(error.value)


def test_skip_bad_rows_counts_them(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "problem": "p", "answer": "1"}, "{not json", {"id": "c", "problem": "r"}])
    rows = load_rows(path, required=("id", "problem", "answer"), skip_bad_rows=True)
    assert len(rows) == 1 and len(rows.skipped) == 2
    assert "not valid JSON" in rows.skipped[0]


def test_empty_and_missing_datasets(tmp_path):
    with pytest.raises(DataError, match="empty"):
        load_rows(write_jsonl(tmp_path / "e.jsonl", []))
    with pytest.raises(DataError, match="not found"):
        load_rows(tmp_path / "missing.jsonl")


def test_save_to_disk_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"id": "a", "problem": "p", "answer": "1"}, {"id": "b", "problem": "q", "answer": None}]).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match="row 1"):
        load_rows(tmp_path / "ds", required=("answer",))
    rows = load_rows(tmp_path / "ds", required=("answer",), skip_bad_rows=True)
    assert [r["id"] for r in rows] == ["a"]


def test_sampler_resumes_exactly():
    sampler = PromptSampler(10, 4, seed=3)
    first = [sampler.next_batch() for _ in range(2)]
    state = sampler.state_dict()
    rest = [sampler.next_batch() for _ in range(3)]
    resumed = PromptSampler(10, 4, seed=3)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(3)] == rest
    # An epoch is a permutation: the first 10 draws cover every row once.
    flat = first[0] + first[1] + rest[0][:2]
    assert sorted(flat) == list(range(10))
