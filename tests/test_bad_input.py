"""Bad input stops the run with a message naming the row/file/key, and leaves no partial checkpoint."""
import json

import pytest
import torch
from PIL import Image

from mmpost.config import ConfigError, load_config
from mmpost.registry import REWARDS
from mmpost.scoring import RewardError
from mmpost.trainer import train
from mmpost.types import DataError, MediaError
from mmpost.update import TrainingError
from conftest import REPO, tiny_overrides


def vqa_rows(tmp_path, rows):
    Image.new("RGB", (56, 56), "red").save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def vqa_overrides(path, **extra):
    return [f"data.task=vqa", f"data.task_args={{path: {path}}}", "eval.heldout=false", "algorithm.source=sft",
            *[f"{k}={v}" for k, v in extra.items()]]


def test_corrupt_image_names_file_and_row_then_skip_option(tiny_vl_dir, tmp_path):
    data = vqa_rows(tmp_path, [{"id": f"ok{i}", "images": ["ok.png"], "problem": "colour?", "answer": "red"} for i in range(3)]
                    + [{"id": "bad", "images": ["broken.png"], "problem": "colour?", "answer": "red"}])
    base = tiny_overrides(tiny_vl_dir, tmp_path / "run", **{"train.steps": 1, "data.shuffle": "false"}) + vqa_overrides(data)
    with pytest.raises(MediaError) as error:
        train(load_config(REPO / "recipes" / "sft.yaml", base))
    assert "broken.png" in str(error.value) and "'bad'" in str(error.value)
    assert not (tmp_path / "run" / "checkpoints").exists()
    summary = train(load_config(REPO / "recipes" / "sft.yaml", base + ["data.skip_bad_rows=true"]))
    metrics = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["data/skipped_rows"] == 1 and summary["steps"] == 1


def test_row_without_answer_and_empty_dataset(tiny_vl_dir, tmp_path):
    data = vqa_rows(tmp_path, [{"id": "a", "images": ["ok.png"], "problem": "colour?"}])
    with pytest.raises(DataError, match=r"data.jsonl:1.*'a'.*answer"):
        train(load_config(REPO / "recipes" / "sft.yaml", tiny_overrides(tiny_vl_dir, tmp_path / "run") + vqa_overrides(data)))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        train(load_config(REPO / "recipes" / "sft.yaml", tiny_overrides(tiny_vl_dir, tmp_path / "run") + vqa_overrides(empty)))


def test_unknown_recipe_key_names_closest():
    with pytest.raises(ConfigError, match=r"algorithm.sft_los'.*algorithm.sft_loss"):
        load_config(REPO / "recipes" / "visurf.yaml", ["algorithm.sft_los=dft"])


@REWARDS.register("test_raises_on_blue")
def raises_on_blue(completions, samples, **_):
    for sample in samples:
        if sample["answer"] == "blue":
            raise ValueError("cannot score blue")
    return [0.0] * len(completions)


def test_reward_that_raises_names_sample_or_scores_zero(warm_vl_dir, tmp_path):
    overrides = tiny_overrides(warm_vl_dir, tmp_path / "run", **{"train.steps": 2, "eval.heldout": "false",
                               "data.prompts_per_step": 8, "data.task_args": "{kinds: [color]}"})
    rewards = ["rewards=[{name: shapes_accuracy}, {name: test_raises_on_blue}]"]
    with pytest.raises(RewardError, match=r"test_raises_on_blue.*sample id 'shapes-train.*cannot score blue"):
        train(load_config(REPO / "recipes" / "grpo.yaml", overrides + rewards))
    train(load_config(REPO / "recipes" / "grpo.yaml", overrides + rewards + ["algorithm.reward_errors=zero"]))
    metrics = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(m["reward/errors"] for m in metrics) > 0


def test_nan_loss_stops_without_partial_checkpoint(warm_vl_dir, tmp_path, monkeypatch):
    from mmpost import update

    original = update.micro_batch_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, parts = original(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 2 else loss), parts

    monkeypatch.setattr(update, "micro_batch_loss", poisoned)
    overrides = tiny_overrides(warm_vl_dir, tmp_path / "run", **{"train.steps": 4, "train.save_every": 1,
                               "eval.heldout": "false", "algorithm.micro_batch_size": 16})
    with pytest.raises(TrainingError, match=r"non-finite loss.*step 3.*sample ids"):
        train(load_config(REPO / "recipes" / "grpo.yaml", overrides))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("step_")) == ["step_1", "step_2"]
    assert not list(checkpoints.glob(".*partial"))
    assert (checkpoints / "latest").read_text() == "step_2"
