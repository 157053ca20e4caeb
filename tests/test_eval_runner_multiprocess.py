"""`mmpost eval --model` under torchrun: two CPU processes (gloo) give the one-process answers."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port
from mmpost.eval.runner import run_evaluation

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval" / "official_formats.py"
_spec = importlib.util.spec_from_file_location("eval_official_formats_mp", FIXTURES)
official_formats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(official_formats)


def lines(folder: Path, name: str) -> list[tuple[str, str, float]]:
    rows = [json.loads(line) for line in (folder / f"samples_{name}.jsonl").read_text().splitlines()]
    return [(row["id"], row["raw_output"], row["score"]) for row in rows]


@pytest.mark.multiprocess
def test_two_processes_match_one(tiny_vl_dir, tmp_path):
    data = official_formats.write_all(tmp_path / "data", ["wemath", "screenspot", "refcoco"])
    benchmarks = ["wemath", "screenspot", "refcoco"]
    single = run_evaluation(str(tiny_vl_dir), benchmarks, data, output=str(tmp_path / "one"), batch_size=2, max_new_tokens=6)
    pairs = ",".join(f"{name}={folder}" for name, folder in data.items())
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "mmpost.eval.cli", "--model", str(tiny_vl_dir),
               "--benchmark", ",".join(benchmarks), "--data", pairs, "--batch-size", "3", "--max-new-tokens", "6",
               "--output", str(tmp_path / "two")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    merged = json.loads((tmp_path / "two" / "results.json").read_text())
    assert merged["config"]["world_size"] == 2
    for name in benchmarks:
        assert lines(tmp_path / "two", name) == lines(tmp_path / "one", name)
        assert merged["results"][name]["metrics"] == single["results"][name]["metrics"]
    # rank r generated items r, r + 2, ...: wemath's 3 items split 2 + 1
    assert len((tmp_path / "two" / "cache" / "wemath.rank0.jsonl").read_text().splitlines()) == 2
    assert len((tmp_path / "two" / "cache" / "wemath.rank1.jsonl").read_text().splitlines()) == 1
