"""Experiment trackers through accelerate (`train.report_to`): TensorBoard read back from its event file, W&B in
offline mode read back from its run folder; the names, the missing-package error and the logged values."""
import json

import pytest

from mmpost.config import ConfigError
from mmpost.trackers import TRACKER_PACKAGES, flat_config, installed, resolve_report_to
from conftest import REPO, tiny_overrides


def test_tracker_names_are_accelerates():
    from accelerate.utils import LoggerType

    assert set(TRACKER_PACKAGES) == set(LoggerType.list()) - {"all"}


def test_report_to_forms_and_errors():
    assert resolve_report_to([]) == [] and resolve_report_to(None) == [] and resolve_report_to("none") == []
    assert resolve_report_to("tensorboard, wandb") == ["tensorboard", "wandb"] == resolve_report_to(["tensorboard", "wandb"])
    assert {"tensorboard", "wandb"} <= set(resolve_report_to("all"))
    with pytest.raises(ConfigError, match="unknown tracker 'tensorbord'; did you mean 'tensorboard'"):
        resolve_report_to("tensorbord")
    missing = next((name for name in ("aim", "dvclive", "swanlab", "clearml") if not installed(name)), None)
    if missing is None:
        pytest.skip("every tracker package is installed here")
    with pytest.raises(ConfigError, match=f"train.report_to={missing} needs the '{missing}' package.*pip install {missing}"):
        resolve_report_to(missing)


def test_missing_tracker_package_is_one_line_from_the_cli(capsys):
    from mmpost.cli import main

    missing = next((name for name in ("aim", "dvclive", "swanlab", "clearml") if not installed(name)), None)
    if missing is None:
        pytest.skip("every tracker package is installed here")
    assert main(["validate", "grpo", f"train.report_to={missing}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pip install {missing}" in err


def test_flat_config_fits_tensorboard_hparams():
    flat = flat_config({"optim": {"lr": 1e-3, "betas": [0.9, 0.99]}, "model": {"zoo": None, "lora": {"r": 8}}})
    assert flat == {"optim.lr": 1e-3, "optim.betas": "[0.9, 0.99]", "model.zoo": "None", "model.lora.r": 8}


def _tensorboard_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(folder.rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event file under {folder}"
    scalars, texts, images = {}, set(), set()
    for path in events:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        for tag in tags["scalars"]:
            scalars.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
        images |= set(tags["images"])
        texts |= {t for t in tags["tensors"]}
    return scalars, texts, images, events


def test_tensorboard_and_wandb_offline_log_the_metrics_config_curves_and_summary(tiny_vl_dir, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    import mmpost

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    overrides = tiny_overrides(tiny_vl_dir, out, **{"train.steps": 2, "data.heldout_size": 2, "algorithm.kl_coef": 0.04, "optim.lr": 2e-4,
                                                   "train.report_to": "[tensorboard,wandb]", "train.run_name": "tracked"})
    summary = mmpost.train(mmpost.load_config(REPO / "recipes" / "grpo.yaml", overrides))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    scalars, texts, images, events = _tensorboard_scalars(out / "tensorboard")
    assert all(str(p).startswith(str(out / "tensorboard" / "mmpost")) for p in events)
    for key in ("reward/mean", "loss/total", "loss/kl", "perf/step_s", "data/skipped_rows"):
        assert sorted(scalars[key]) == [1, 2], key
        for record in records:
            assert scalars[key][record["step"]] == pytest.approx(record[key], rel=1e-6, abs=1e-7), key
    assert scalars["summary/steps"][2] == 2 and scalars["summary/heldout_accuracy_after"][2] == pytest.approx(summary["heldout_accuracy_after"])
    assert "curves" in images
    assert {"summary/text_summary", "config/text_summary"} <= texts  # the summary JSON and the resolved config.yaml
    assert any(p.name == "hparams.yml" for p in (out / "tensorboard").rglob("hparams.yml"))  # accelerate's copy of the config

    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    records_wandb = _wandb_records(runs[0])
    history = [r["history"]["item"] for r in records_wandb if r["type"] == "history"]
    summary_wandb: dict = {}
    for r in records_wandb:
        if r["type"] == "summary":
            summary_wandb.update(r["summary"]["update"])
    config_wandb = {k: v for r in records_wandb if r["type"] == "config" for k, v in r["config"]["update"].items()}
    for key in ("perf/step_s", "rollout/mean_length", "loss/kl"):
        assert [h[key] for h in history if key in h] == pytest.approx([r[key] for r in records]), key
    assert [h["_step"] for h in history] == [1, 2]
    assert summary_wandb["steps"] == 2 and summary_wandb["summary/steps"] == 2
    assert summary_wandb["heldout_accuracy_after"] == pytest.approx(summary["heldout_accuracy_after"])
    assert summary_wandb["curves._type"] == "images/separated" and list((runs[0] / "files" / "media" / "images").glob("curves_*.png"))
    assert config_wandb["optim.lr"] == pytest.approx(2e-4) and config_wandb["train.report_to"] == '["tensorboard", "wandb"]'
    assert config_wandb["algorithm.kl_coef"] == pytest.approx(0.04)


def _wandb_records(run_folder):
    """The records of an offline W&B run, read back by wandb's own reader (`wandb leet inspect --json`)."""
    import subprocess
    import sys
    from pathlib import Path

    command = [str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(run_folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
