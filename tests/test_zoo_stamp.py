"""The record a zoo build leaves next to the model (mmpost_zoo.json): a digest per weights file and what it was built
with, so two builds can be compared byte for byte; a cached folder is reused, not rebuilt."""
import hashlib
import json

import torch

from mmpost.config import ModelConfig
from mmpost.model import ZOO_STAMP, ensure_model_folder


def test_a_zoo_build_records_its_weights_digest_and_build_environment(tmp_path):
    folder = tmp_path / "tiny"
    assert ensure_model_folder(ModelConfig(path=str(folder), zoo="tiny-qwen2.5-vl")) == str(folder)
    stamp = json.loads((folder / ZOO_STAMP).read_text())
    weights = folder / "model.safetensors"
    assert stamp["zoo"] == "tiny-qwen2.5-vl"
    assert stamp["weights_sha256"] == {"model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert stamp["built_with"]["torch"] == torch.__version__ and stamp["built_with"]["cpu"]
    # Built once: a second call reuses the folder (the weights file is not rewritten) and keeps the record.
    written = weights.stat().st_mtime_ns
    ensure_model_folder(ModelConfig(path=str(folder), zoo="tiny-qwen2.5-vl"))
    assert weights.stat().st_mtime_ns == written and json.loads((folder / ZOO_STAMP).read_text()) == stamp
