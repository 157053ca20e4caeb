"""The output folder: a run never destroys another run's files; resume with a changed config; torn and failed writes."""
import collections
import errno
import fcntl
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mmpost import checkpoint as checkpoint_module
from mmpost.checkpoint import CheckpointError, save_checkpoint
from mmpost.config import load_config
from mmpost.run_dir import LOCK_NAME, OutputDirError
from mmpost.trainer import train
from conftest import REPO, tiny_overrides

GRPO = REPO / "recipes" / "grpo.yaml"


def run(model_dir, out, *extra, **values):
    values = {"eval.heldout": "false", "train.steps": 2, **values}
    return train(load_config(GRPO, tiny_overrides(model_dir, out, **values) + list(extra)))


def steps_in(out):
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def checkpoints(out):
    return sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step_"))


def run_id(folder):
    return json.loads((folder / "trainer_state.json").read_text())["run_id"]


def test_second_run_refuses_a_folder_holding_another_run(tiny_vl_dir, tmp_path):
    """`mmpost train` twice into one folder: the second run stops with exit code 2 before loading a model, and the
    first run's metrics and checkpoints are untouched."""
    out = tmp_path / "run"
    run(tiny_vl_dir, out, **{"train.steps": 3, "train.save_every": 1})
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file() and path.name not in ("train.log", LOCK_NAME)}
    command = [sys.executable, "-m", "mmpost.cli", "train", str(GRPO),
               *tiny_overrides(tiny_vl_dir, out, **{"eval.heldout": "false", "train.steps": 2})]
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert second.returncode == 2, second.stderr[-2000:]
    assert "holds another run" in second.stderr and "train.resume=auto" in second.stderr and "overwrite_output_dir" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    after = {path: path.read_bytes() for path in out.rglob("*") if path.is_file() and path.name not in ("train.log", LOCK_NAME)}
    assert after == before


def test_overwrite_keeps_the_other_runs_checkpoints_and_prunes_only_its_own(tiny_vl_dir, tmp_path):
    """The issue's scenario: run A leaves step_3/step_4; run B (overwrite, keep 1) must never prune A's higher steps
    instead of its own, and `latest` always names a complete checkpoint of B."""
    out = tmp_path / "run"
    run(tiny_vl_dir, out, **{"train.steps": 4, "train.save_every": 1, "train.keep_checkpoints": 2})
    assert checkpoints(out) == ["step_3", "step_4"]
    first_id = run_id(out / "checkpoints" / "step_4")
    run(tiny_vl_dir, out, **{"train.steps": 2, "train.save_every": 1, "train.keep_checkpoints": 1,
                             "train.overwrite_output_dir": "true"})
    assert checkpoints(out) == ["step_2", "step_3", "step_4"]
    assert (out / "checkpoints" / "latest").read_text() == "step_2"
    second_id = run_id(out / "checkpoints" / "step_2")
    assert second_id != first_id and run_id(out / "checkpoints" / "step_4") == first_id
    assert steps_in(out) == [1, 2]  # B's metrics replaced A's
    # B continues; its pruning still leaves A's checkpoints alone.
    run(tiny_vl_dir, out, **{"train.steps": 3, "train.resume": "auto", "train.keep_checkpoints": 1})
    assert steps_in(out) == [1, 2, 3] and (out / "checkpoints" / "latest").read_text() == "step_3"
    assert run_id(out / "checkpoints" / "step_3") == second_id
    assert "step_2" not in checkpoints(out) and run_id(out / "checkpoints" / "step_4") == first_id


def test_a_folder_in_use_by_another_process_is_refused(tiny_vl_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / LOCK_NAME, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("pid 12345 on elsewhere\n")
        handle.flush()
        with pytest.raises(OutputDirError, match="another mmpost run .*pid 12345"):
            run(tiny_vl_dir, out)
    assert not (out / "metrics.jsonl").exists()


def test_resume_with_changed_config(tiny_vl_dir, tmp_path):
    """Resumable keys (lr, steps) take effect, are logged and recorded; keys that define the run refuse with a diff
    naming where the new value came from."""
    out = tmp_path / "run"
    run(tiny_vl_dir, out, **{"train.steps": 4, "train.save_every": 2, "train.stop_after": 2, "optim.lr": 1e-3})
    with pytest.raises(OutputDirError) as refused:
        run(tiny_vl_dir, out, **{"train.steps": 4, "train.resume": "auto", "rollout.num_generations": 2,
                                 "algorithm.advantage": "rloo"})
    message = str(refused.value)
    assert "algorithm.advantage: 'grpo' -> 'rloo' (command line (algorithm.advantage=rloo))" in message
    assert "rollout.num_generations: 4 -> 2" in message and steps_in(out) == [1, 2]

    run(tiny_vl_dir, out, **{"train.steps": 3, "train.resume": "auto", "optim.lr": 1e-5})
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[1]["perf/lr"] == pytest.approx(1e-3) and records[2]["perf/lr"] == pytest.approx(1e-5)
    state = json.loads((out / "checkpoints" / "step_3" / "trainer_state.json").read_text())
    [record] = state["config_changes"]
    assert record["step"] == 3 and "train.resume" not in record["changes"]
    assert record["changes"]["optim.lr"] == [1e-3, 1e-5] and record["changes"]["train.steps"] == [4, 3]
    assert "optim.lr changed from 0.001 to 1e-05" in (out / "train.log").read_text()
    assert "lr: 1.0e-05" in (out / "config.yaml").read_text()


def test_resume_tolerates_a_torn_last_metrics_line(tiny_vl_dir, tmp_path):
    out = tmp_path / "run"
    run(tiny_vl_dir, out, **{"train.steps": 3, "train.save_every": 2, "train.stop_after": 2})
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 3, "loss/total": 0.1')  # killed in the middle of writing step 3's line
    run(tiny_vl_dir, out, **{"train.steps": 3, "train.resume": "auto"})
    assert steps_in(out) == [1, 2, 3]
    # What a checkpoint holds: safetensors, JSON, YAML and the processor's text files; nothing pickled.
    suffixes = {path.suffix for path in (out / "checkpoints" / "step_3").rglob("*") if path.is_file()}
    assert suffixes <= {".safetensors", ".json", ".yaml", ".jinja", ".txt"} and ".safetensors" in suffixes


class TinyProcessor:
    def save_pretrained(self, folder):
        with open(os.path.join(folder, "processor.json"), "w") as handle:
            handle.write("{}")


class TinyModel(torch.nn.Linear):
    def save_pretrained(self, folder, safe_serialization=True, **_):
        from safetensors.torch import save_file

        os.makedirs(folder, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, os.path.join(folder, "model.safetensors"))


def tiny_checkpoint_parts():
    model = TinyModel(64, 64)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 64)).sum().backward()
    optimizer.step()
    return model, optimizer


def save(out, step, model, optimizer, run="run-a", keep=2):
    return save_checkpoint(out, step, model=model, processor=TinyProcessor(), optimizer=optimizer,
                           trainer_state={"step": step, "run_id": run}, config_yaml="{}\n", is_main=True, rank=0, keep=keep)


def test_pruning_only_touches_this_runs_checkpoints(tmp_path):
    model, optimizer = tiny_checkpoint_parts()
    for step in (7, 8):
        save(tmp_path, step, model, optimizer, run="other")
    for step in (1, 2, 3):
        save(tmp_path, step, model, optimizer, run="mine", keep=2)
    assert checkpoints(tmp_path) == ["step_2", "step_3", "step_7", "step_8"]
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step_3"


def test_checkpoint_refused_when_the_disk_is_too_full(tmp_path, monkeypatch):
    model, optimizer = tiny_checkpoint_parts()
    save(tmp_path, 1, model, optimizer)
    needed = checkpoint_module.estimate_checkpoint_bytes(model, optimizer)
    assert needed >= 64 * 65 * 4 * 3  # weights + two Adam moments
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(CheckpointError) as refused:
        save(tmp_path, 2, model, optimizer)
    assert f"({needed} bytes)" in str(refused.value) and "(1000 bytes) is free" in str(refused.value)
    assert "checkpoints/step_1" in str(refused.value)
    assert checkpoints(tmp_path) == ["step_1"] and not list((tmp_path / "checkpoints").glob(".*partial"))


def test_a_failed_checkpoint_write_removes_its_partial_folder(tmp_path, monkeypatch):
    model, optimizer = tiny_checkpoint_parts()
    save(tmp_path, 1, model, optimizer)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "optimizer_state_to_files", disk_full)
    with pytest.raises(CheckpointError, match="step_2 could not be written.*No space left.*partial folder was removed"):
        save(tmp_path, 2, model, optimizer)
    root = tmp_path / "checkpoints"
    assert not list(root.glob(".*partial")) and checkpoints(tmp_path) == ["step_1"]
    assert (root / "latest").read_text() == "step_1"
    assert load_file(str(root / "step_1" / "model" / "model.safetensors"))["weight"].shape == (64, 64)


UNSAFE = re.compile(r"torch\.load\(|pickle\.loads?\(|(?<![.\w])eval\(|(?<![.\w])exec\(|shell=True|os\.system\(|weights_only=False")


def test_no_pickle_eval_or_shell_in_the_code():
    """Checkpoints and data are read with safetensors/JSON/YAML only; nothing is evaluated or run through a shell."""
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for folder in ("mmpost", "modalities", "tasks", "eval") for path in sorted((REPO / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1) if UNSAFE.search(line)]
    assert found == []


def test_resuming_a_checkpoint_from_elsewhere_into_a_folder_holding_another_run_is_refused(tiny_vl_dir, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints" / "step_5").mkdir(parents=True)
    (out / "checkpoints" / "step_5" / "trainer_state.json").write_text('{"step": 5, "run_id": "other"}')
    with pytest.raises(OutputDirError, match="continues a checkpoint from elsewhere.*give an empty train.output_dir"):
        run(tiny_vl_dir, out, **{"train.resume": str(tmp_path / "elsewhere" / "checkpoints" / "step_2")})
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "checkpoints"]  # nothing written, no model loaded
