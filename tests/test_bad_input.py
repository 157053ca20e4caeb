"""Bad input stops the run with a message naming the row/file/key, and leaves no partial checkpoint."""
import json
from pathlib import Path

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


def test_one_switch_skips_rows_with_missing_fields_unreadable_lines_and_broken_media(tiny_vl_dir, tmp_path):
    """data.skip_bad_rows covers rows with missing fields (found when the file is opened) and broken media (found
    when the row is decoded): each is logged with its reason and counted once in data/skipped_rows."""
    data = vqa_rows(tmp_path, [{"id": f"ok{i}", "images": ["ok.png"], "problem": "colour?", "answer": "red"} for i in range(3)]
                    + [{"id": "noanswer", "images": ["ok.png"], "problem": "colour?"},
                       {"id": "bad", "images": ["broken.png"], "problem": "colour?", "answer": "red"}])
    with open(data, "ab") as handle:
        handle.write(b'{"id": "latin1", "problem": "caf\xe9?", "answer": "x"}\n')
    out = tmp_path / "run"
    base = tiny_overrides(tiny_vl_dir, out, **{"train.steps": 2, "data.shuffle": "false"}) + vqa_overrides(data)
    # Lines that are not JSON text are found when the file is opened, before any row is mapped.
    with pytest.raises(DataError, match=r"data.jsonl:6: not UTF-8 text"):
        train(load_config(REPO / "recipes" / "sft.yaml", base))
    with open(data, "rb") as handle:
        without_latin1 = handle.read().splitlines(keepends=True)[:-1]
    clean = data.with_name("clean.jsonl")
    clean.write_bytes(b"".join(without_latin1))
    with pytest.raises(DataError, match=r"clean.jsonl:4 \(mmpost layout, id 'noanswer'\): no answer in the row"):
        train(load_config(REPO / "recipes" / "sft.yaml", base + vqa_overrides(clean)))
    summary = train(load_config(REPO / "recipes" / "sft.yaml", base + ["data.skip_bad_rows=true"]))
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["data/skipped_rows"] for m in metrics] == [3, 3] and summary["skipped_rows"] == 3
    log = (out / "train.log").read_text()
    assert "data.jsonl:4 (mmpost layout, id 'noanswer'): no answer in the row" in log
    assert "data.jsonl:6: not UTF-8 text" in log
    assert log.count("broken.png: not a readable image") == 1  # logged once, although the row came up twice


def test_media_paths_outside_the_data_folder_need_an_explicit_option(tiny_vl_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (56, 56), "blue").save(outside / "far.png")
    inside = tmp_path / "data"
    inside.mkdir()
    data = vqa_rows(inside, [{"id": "ok", "images": ["ok.png"], "problem": "colour?", "answer": "red"},
                             {"id": "dotdot", "images": ["../elsewhere/far.png"], "problem": "colour?", "answer": "blue"},
                             {"id": "absolute", "images": [str(outside / "far.png")], "problem": "colour?", "answer": "blue"}])
    base = tiny_overrides(tiny_vl_dir, tmp_path / "run", **{"train.steps": 1, "data.shuffle": "false",
                                                            "data.prompts_per_step": 3}) + vqa_overrides(data)
    with pytest.raises(MediaError) as refused:
        train(load_config(REPO / "recipes" / "sft.yaml", base))
    message = str(refused.value)
    assert "sample 'dotdot'" in message and f"resolves to {outside / 'far.png'}, outside the media root {inside}" in message
    assert "data.allow_media_outside_root=true" in message and "row id 'dotdot'" in message
    assert train(load_config(REPO / "recipes" / "sft.yaml", base + [f"data.media_root={tmp_path}",
                                                                   "train.overwrite_output_dir=true"]))["steps"] == 1
    assert train(load_config(REPO / "recipes" / "sft.yaml", base + ["data.allow_media_outside_root=true",
                                                                   "train.overwrite_output_dir=true"]))["steps"] == 1


def test_media_root_resolution():
    from mmpost.modalities.common import resolve_media_path
    from mmpost.types import MediaRoot

    assert resolve_media_path("img/a.png", "/data/set", "image") == Path("/data/set/img/a.png")
    assert resolve_media_path("img/../b.png", "/data/set", "image") == Path("/data/set/img/../b.png")
    for source in ["/etc/passwd", "../../etc/passwd", "file:///etc/passwd", "img/../../other/x.png"]:
        with pytest.raises(MediaError, match="outside the media root /data/set"):
            resolve_media_path(source, "/data/set", "image")
    assert resolve_media_path("/etc/passwd", MediaRoot("/data/set", None), "image") == Path("/etc/passwd")
    assert resolve_media_path("../shared/x.png", MediaRoot("/data/set", "/data"), "image") == Path("/data/set/../shared/x.png")
    assert resolve_media_path("/abs/x.png", None, "image") == Path("/abs/x.png")  # rows built in memory by a task
