"""Exact resume: a run stopped after step k and resumed gives the same later metrics and final weights."""
import json

import pytest
from safetensors.torch import load_file

from mmpost.config import load_config
from mmpost.trainer import train
from conftest import REPO, tiny_overrides


def run_recipe(recipe, model_dir, output_dir, *extra):
    return train(load_config(REPO / "recipes" / recipe, tiny_overrides(model_dir, output_dir) + list(extra)))


def learning_metrics(output_dir):
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/") or k == "perf/lr"} for r in rows]


def final_weights(output_dir, step):
    folder = output_dir / "checkpoints" / f"step_{step}" / "model"
    return {k: v for path in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(path)).items()}


@pytest.mark.parametrize("recipe,extra", [("visurf.yaml", ["algorithm.ppo_epochs=2", "algorithm.mini_batches=2", "algorithm.kl_coef=0.05"]),
                                          ("grpo.yaml", ["model.lora.enabled=true", "algorithm.kl_coef=0.05"])])
def test_stopped_and_resumed_run_matches_uninterrupted(warm_vl_dir, tmp_path, recipe, extra):
    common = ["train.steps=4", *extra]
    straight = run_recipe(recipe, warm_vl_dir, tmp_path / "straight", *common)
    stopped = run_recipe(recipe, warm_vl_dir, tmp_path / "resumed", *common, "train.save_every=2", "train.stop_after=2")
    assert stopped == {"stopped_at": 2}
    assert (tmp_path / "resumed" / "checkpoints" / "step_2" / "trainer_state.json").is_file()
    resumed = run_recipe(recipe, warm_vl_dir, tmp_path / "resumed", *common, "train.save_every=2", "train.resume=auto")
    a, b = learning_metrics(tmp_path / "straight"), learning_metrics(tmp_path / "resumed")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert a == b
    assert resumed["heldout_accuracy_after"] == straight["heldout_accuracy_after"]
    wa, wb = final_weights(tmp_path / "straight", 4), final_weights(tmp_path / "resumed", 4)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
