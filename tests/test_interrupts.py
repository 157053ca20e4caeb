"""Signals are handled for the whole run: before the first step, during evaluations, a second Ctrl-C; exit codes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mmpost import trainer
from mmpost.config import load_config
from mmpost.errors import RunInterrupted, run_command, summary_exit_code
from mmpost.trainer import train
from conftest import REPO, tiny_overrides

GRPO = REPO / "recipes" / "grpo.yaml"


def interrupt_self(times=1):
    """Deliver SIGINT to this process as Ctrl-C would, and give the handler the chance to run."""
    for _ in range(times):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    time.sleep(5)  # a handler that stops at once interrupts this sleep
    raise AssertionError("the signal did not stop the run")


def config(model_dir, out, **values):
    return load_config(GRPO, tiny_overrides(model_dir, out, **{"train.steps": 4, **values}))


def test_ctrl_c_during_the_evaluation_before_the_first_step(tiny_vl_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "heldout_accuracy", lambda run: interrupt_self())
    with pytest.raises(RunInterrupted) as stopped:
        train(config(tiny_vl_dir, tmp_path / "run"))
    assert stopped.value.signum == signal.SIGINT
    assert str(stopped.value) == ("SIGINT stopped the run during the held-out evaluation before the first step (nothing "
                                  "to resume); no checkpoint was written yet")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_ctrl_c_during_a_periodic_evaluation_saves_the_step_and_resumes(tiny_vl_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = trainer.periodic_evaluation
    monkeypatch.setattr(trainer, "periodic_evaluation", lambda run: interrupt_self())
    summary = train(config(tiny_vl_dir, out, **{"eval.heldout": "false", "eval.every_n_steps": 2}))
    assert summary["interrupted_at"] == 2 and summary["signal"] == "SIGINT" and summary_exit_code(summary) == 130
    assert (out / "checkpoints" / "latest").read_text() == "step_2"
    monkeypatch.setattr(trainer, "periodic_evaluation", real)
    train(config(tiny_vl_dir, out, **{"eval.heldout": "false", "train.resume": "auto"}))
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_second_ctrl_c_stops_at_once_and_names_the_last_checkpoint(tiny_vl_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = trainer.train_step
    handler_before = signal.getsignal(signal.SIGINT)

    def step_then_double_interrupt(run, step):
        if step == 2:
            interrupt_self(times=2)
        return real(run, step)

    monkeypatch.setattr(trainer, "train_step", step_then_double_interrupt)
    with pytest.raises(RunInterrupted) as stopped:
        train(config(tiny_vl_dir, out, **{"eval.heldout": "false", "train.save_every": 1}))
    assert str(stopped.value) == ("a second signal stopped the run during step 2 (step 2 was not saved); the last "
                                  "checkpoint is checkpoints/step_1 (continue with train.resume=auto)")
    assert (out / "checkpoints" / "latest").read_text() == "step_1"
    assert signal.getsignal(signal.SIGINT) is handler_before  # the run's handlers are gone


def test_exit_codes_of_interrupts():
    def raises(error):
        def command():
            raise error
        return command

    assert run_command(raises(RunInterrupted("SIGINT stopped the run", signal.SIGINT))) == 130
    assert run_command(raises(RunInterrupted("SIGTERM stopped the run", signal.SIGTERM))) == 143
    assert run_command(raises(KeyboardInterrupt())) == 130
    assert summary_exit_code({"steps": 4}) == 0 and summary_exit_code({"interrupted_at": 2, "signal": "SIGTERM"}) == 0


def test_ctrl_c_while_loading_is_one_line_and_exit_130(tiny_vl_dir, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "mmpost.cli", "train", str(GRPO),
               *tiny_overrides(tiny_vl_dir, out, **{"data.heldout_size": 256, "eval.batch_size": 2})]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "train.log").exists():  # written once the config checks passed
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert "SIGINT stopped the run" in line and "before the first step" in line and "no checkpoint was written yet" in line
    assert not (out / "checkpoints").exists()
    assert "interrupted: SIGINT stopped the run" in (out / "train.log").read_text()
