"""Batch-level advantage statistics are over all processes: 2 processes (gloo) give exactly 1 process's numbers.

`scale: batch` (TRL), Flow-GRPO's global std and REINFORCE++-baseline's whitening (verl) use statistics of the
whole batch; the trainer gathers every process's rewards (and completion lengths) before the estimator runs. The
batch holds rows whose every reward is None (left out, advantage 0) and a zero-variance group (dropped).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import advantage_worker  # noqa: E402
from conftest import free_port  # noqa: E402


@pytest.mark.multiprocess
def test_two_processes_give_one_process_advantages(tmp_path):
    single = advantage_worker.advantages(0, 1)
    out = tmp_path / "two.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(Path(__file__).parent / "advantage_worker.py"), str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads(out.read_text())
    for case, expected in single.items():
        got = two[case]
        assert {int(k): v for k, v in got["advantages"].items()} == pytest.approx(expected["advantages"], abs=1e-6), case
        assert {int(k): v for k, v in got["kept"].items()} == expected["kept"], case
        assert got["metrics"]["reward/unscorable"] == expected["metrics"]["reward/unscorable"] == 2.0
    # The statistics really are batch-level: rank 0's rows with statistics of its own half (what the trainer did
    # before it gathered) give other numbers for every batch-level estimator, and the same for group-level ones.
    local = advantage_worker.advantages(0, 2)  # no process group: gather_rows sees only these rows
    for case in single:
        own = local[case]["advantages"]
        gap = max(abs(own[r] - single[case]["advantages"][r]) for r in own)
        assert (gap > 1e-3) == (case in ("grpo{'scale': 'batch'}", "flow_grpo{}", "reinforce_pp{}")), (case, gap)


def test_unscorable_rows_get_zero_and_stay_out_of_group_statistics():
    result = advantage_worker.advantages(0, 1)
    group = result["grpo{'scale': 'group'}"]["advantages"]
    assert group[5] == 0.0 and group[17] == 0.0
    # Group 1 (rows 4-7): row 5 is unscorable, so the mean and std are over rows 4, 6, 7 (rewards 1, 0.25, 1.5).
    import statistics
    scored = [1.0, 0.25, 1.5]
    mean, std = statistics.mean(scored), statistics.stdev(scored)
    assert group[4] == pytest.approx((1.0 - mean) / (std + 1e-6), abs=1e-6)
    # Group 3 (rows 12-15) has equal rewards: zero variance, dropped with drop_zero_variance_groups.
    kept = result["grpo{'scale': 'group'}"]["kept"]
    assert not any(kept[r] for r in range(12, 16)) and all(kept[r] for r in range(0, 12))
