"""Gradient accumulation and data parallelism change nothing: 1 x 16 rows = 16 x 1 = 2 processes x 8.

Weights after one plain SGD step (lr 1, no clipping) are compared, so the test sees the gradient itself
(Adam's first step would normalise magnitudes away).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import update_worker  # noqa: E402
from conftest import free_port  # noqa: E402

AGGREGATIONS = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm", "token_sum_norm"]


def max_difference(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_micro_batches_equal_full_batch(tiny_vl_dir, aggregation):
    # token_sum_norm's C: ~ the batch's token count, so its SGD step is as large as the others' (float32 rounding).
    norm = 48 if aggregation == "token_sum_norm" else None
    initial = update_worker.fixed_batch(str(tiny_vl_dir), aggregation)[1].state_dict()
    full = update_worker.run(str(tiny_vl_dir), 16, aggregation, norm)
    accumulated = update_worker.run(str(tiny_vl_dir), 1, aggregation, norm)
    assert max_difference(full, initial) > 1e-4  # the step moved the weights
    assert max_difference(full, accumulated) < 1e-6


@pytest.mark.multiprocess
def test_two_processes_equal_one(tiny_vl_dir, tmp_path):
    aggregation = "seq_mean_token_mean"
    single = update_worker.run(str(tiny_vl_dir), 4, aggregation)
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(Path(__file__).parent / "update_worker.py"), str(tiny_vl_dir), str(out), "4", aggregation],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert max_difference(single, load_file(str(out))) < 1e-6


@pytest.mark.multiprocess
def test_token_sum_norm_on_two_processes_averages_like_the_references(tiny_vl_dir, tmp_path):
    """HPT / verl's token-sum mode on P processes: each process's token sum / C, gradients averaged over processes,
    i.e. the whole batch's token sum / (C * P). So 2 processes with C equal 1 process with 2C."""
    single = update_worker.run(str(tiny_vl_dir), 4, "token_sum_norm", 96)
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(Path(__file__).parent / "update_worker.py"), str(tiny_vl_dir), str(out), "4", "token_sum_norm", "48"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert max_difference(single, load_file(str(out))) < 1e-6
    assert max_difference(single, update_worker.run(str(tiny_vl_dir), 4, "token_sum_norm", 48)) > 1e-4
