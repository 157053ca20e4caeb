"""SIGTERM during a run: the step in flight finishes, a consistent checkpoint is written, resume=auto continues."""
import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, tiny_overrides


def test_sigterm_checkpoints_and_resume_continues(warm_vl_dir, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "mmpost.cli", "train", str(REPO / "recipes" / "grpo.yaml"),
               *tiny_overrides(warm_vl_dir, out, **{"train.steps": 200, "eval.heldout": "false"})]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 2):
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-2000:]
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    stopped = steps[-1]
    assert 2 <= stopped < 200 and steps == list(range(1, stopped + 1))
    assert "interrupted_at" in stdout and "SIGTERM" in stderr
    checkpoints = out / "checkpoints"
    assert (checkpoints / "latest").read_text() == f"step_{stopped}"
    assert (checkpoints / f"step_{stopped}" / "trainer_state.json").is_file()
    assert not list(checkpoints.glob(".*partial"))

    resumed = subprocess.run([*command, "train.resume=auto", f"train.steps={stopped + 2}"], capture_output=True,
                             text=True, env=env, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, stopped + 3))
    assert (checkpoints / "latest").read_text() == f"step_{stopped + 2}"
