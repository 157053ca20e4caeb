"""Benchmark evaluation on the live model inside training: same numbers as `mmpost eval --model`."""
from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

import pytest

from mmpost.config import ModelConfig
from mmpost.eval.runner import run_evaluation
from mmpost.model import load_model, load_processor

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval" / "official_formats.py"
_spec = importlib.util.spec_from_file_location("eval_official_formats_it", FIXTURES)
official_formats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(official_formats)


def test_metrics_named_and_equal_to_the_standalone_run(tiny_vl_dir, tmp_path, caplog):
    data = official_formats.write_all(tmp_path / "data", ["wemath", "refcoco", "mathvista"])
    # The trainer's registry-free path to the harness.
    evaluate = importlib.import_module("mmpost.eval.in_training").evaluate_during_training
    model = load_model(ModelConfig(path=str(tiny_vl_dir)))
    processor = load_processor(str(tiny_vl_dir))
    model.train()
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(model, processor, ["wemath", "refcoco", "mathvista"], data, limit=None, max_new_tokens=6)
    assert model.training  # generation puts the model back in training mode
    standalone = run_evaluation(str(tiny_vl_dir), ["wemath", "refcoco"], data, output=str(tmp_path / "out"),
                                max_new_tokens=6, batch_size=3)
    for name in ("wemath", "refcoco"):
        for metric, value in standalone["results"][name]["metrics"].items():
            if value is not None:
                assert metrics[f"eval/{name}/{metric}"] == pytest.approx(value)
    assert metrics["eval/wemath/n_samples"] == 3.0 and metrics["eval/refcoco/seconds"] > 0
    assert "eval/wemath/RM_strict" not in metrics or metrics["eval/wemath/RM_strict"] is not None
    assert all(key.startswith("eval/") for key in metrics)
    assert isinstance(metrics["eval/wemath/score_strict"], float)
    # MathVista's free-form answers need the LLM extraction: without a judge it is skipped, loudly
    assert not any(key.startswith("eval/mathvista/") for key in metrics)
    assert "eval/mathvista skipped" in caplog.text
