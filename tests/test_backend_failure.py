"""A rollout engine that dies mid-run: the error names the step and the cause, and `latest` still points at the
last consistent checkpoint (never at a partial one)."""
import pytest

from conftest import REPO, tiny_overrides
from mmpost import load_config, train
from mmpost.registry import ROLLOUT_BACKENDS
from mmpost.rollout.base import RolloutBackendError
from mmpost.rollout.hf import HFGenerateBackend


@ROLLOUT_BACKENDS.register("test_dies_at_third_call")
class DiesAtThirdCall(HFGenerateBackend):
    calls = 0

    def generate(self, prompts, samples, params):
        type(self).calls += 1
        if type(self).calls == 3:
            raise RolloutBackendError("engine process exited with code -9 (killed)")
        return super().generate(prompts, samples, params)


def test_backend_death_reports_cause_and_keeps_last_checkpoint(warm_vl_dir, tmp_path):
    out = tmp_path / "run"
    overrides = tiny_overrides(warm_vl_dir, out, **{"train.steps": 5, "train.save_every": 1, "eval.heldout": "false",
                                                   "rollout.backend": "test_dies_at_third_call"})
    DiesAtThirdCall.calls = 0
    with pytest.raises(RolloutBackendError, match=r"step 3: engine process exited with code -9 \(killed\).*checkpoints/step_2"):
        train(load_config(REPO / "recipes" / "grpo.yaml", overrides))
    checkpoints = out / "checkpoints"
    assert (checkpoints / "latest").read_text() == "step_2"
    assert not (checkpoints / "step_3").exists() and not list(checkpoints.glob(".*partial"))
