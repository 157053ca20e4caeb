"""recipes/propa.yaml: the tiny CPU preset runs a round end to end, and a run stopped between rounds and resumed
repeats the next round's search exactly (same metrics, same weights) as an uninterrupted run."""
import json

import pytest
from safetensors.torch import load_file

from mmpost.config import load_config
from mmpost.trainer import train
from conftest import REPO


@pytest.fixture(scope="module")
def warm_propa_dir(tmp_path_factory):
    from mmpost.registry import MODEL_ZOO

    return MODEL_ZOO.get("tiny-qwen2.5-vl-propa")(tmp_path_factory.mktemp("zoo") / "propa", steps=40)


def preset(model_dir, output_dir, **extra):
    """The tiny CPU preset named in recipes/propa.md."""
    values = {"model.path": str(model_dir), "model.zoo": "null", "train.output_dir": str(output_dir), "train.threads": 1,
              "train.progress": "false", "data.prompts_per_step": 2, "algorithm.source_args.iterations": 3,
              "algorithm.source_args.num_children": 2, "algorithm.source_args.max_depth": 4,
              "algorithm.source_args.tree_dir": str(output_dir / "trees"), "train.steps": 1}
    values.update(extra)
    return load_config(REPO / "recipes" / "propa.yaml", [f"{k}={v}" for k, v in values.items()])


def metrics(output_dir):
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/") or k == "perf/lr"} for r in rows]


def test_tiny_preset_runs_one_round(warm_propa_dir, tmp_path):
    summary = train(preset(warm_propa_dir, tmp_path / "run"))
    assert summary["steps"] == 1
    [row] = metrics(tmp_path / "run")
    assert {"propa/groups", "propa/sft_questions", "propa/solved_fraction", "reward/propa_step_label", "loss/total"} <= set(row)
    assert row["propa/groups"] + row["propa/sft_questions"] > 0
    assert (tmp_path / "run" / "trees" / "round_00001_rank0.jsonl").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_1" / "model" / "model.safetensors").is_file()


def test_resumed_run_repeats_the_interrupted_rounds_search(warm_propa_dir, tmp_path):
    straight = tmp_path / "straight"
    train(preset(warm_propa_dir, straight, **{"train.steps": 3}))
    resumed = tmp_path / "resumed"
    assert train(preset(warm_propa_dir, resumed, **{"train.steps": 3, "train.save_every": 1, "train.stop_after": 1})) == {"stopped_at": 1}
    train(preset(warm_propa_dir, resumed, **{"train.steps": 3, "train.save_every": 1, "train.resume": "auto"}))
    a, b = metrics(straight), metrics(resumed)
    assert [r["step"] for r in b] == [1, 2, 3] and a == b
    for step in (2, 3):  # the searched trees of the rounds after the interruption are identical
        assert (straight / "trees" / f"round_0000{step}_rank0.jsonl").read_text() == (resumed / "trees" / f"round_0000{step}_rank0.jsonl").read_text()
    wa = load_file(str(straight / "checkpoints" / "step_3" / "model" / "model.safetensors"))
    wb = load_file(str(resumed / "checkpoints" / "step_3" / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
