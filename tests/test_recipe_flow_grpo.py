"""recipes/flow_grpo.yaml: the CPU preset runs through mmpost.train, re-scores exactly, and resumes mid-run.
Also the task's analytic rewards against hand-computed images."""
import json
from pathlib import Path

import pytest
import torch

import mmpost
from mmpost.config import load_config
from mmpost.tasks.flow_shapes import blob_images, flow_shapes_contrast, flow_shapes_hit, quadrant_contrast

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "flow_grpo.yaml"


def test_contrast_and_hit_rewards_by_hand():
    image = -torch.ones(1, 16, 16)
    image[0, 0:4, 0:4] = 1.0  # 16 bright pixels in the top-left quadrant (64 pixels): its mean in [0, 1] is 0.25
    samples = [{"id": "a", "label": 0}, {"id": "b", "label": 3}]
    # label 0: 0.25 - mean(0, 0, 0) = 0.25; label 3: 0 - mean(0.25, 0, 0) = -1/12
    assert flow_shapes_contrast([image, image], samples) == pytest.approx([0.25, -1 / 12])
    assert flow_shapes_hit([image, image], samples) == [1.0, 0.0]
    # All-bright is no better than all-dark: contrast 0.
    assert quadrant_contrast(torch.ones(1, 16, 16), 2) == 0.0
    # Values outside the output range are clamped before scoring.
    assert flow_shapes_contrast([image * 5], samples[:1]) == pytest.approx([0.25])


def test_pretraining_blobs_follow_the_class_with_the_given_probability():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(64)
    images = blob_images(labels, match_probability=1.0, generator=generator)
    assert images.shape == (256, 1, 16, 16) and set(images.unique().tolist()) == {-1.0, 1.0}
    assert flow_shapes_hit(list(images), [{"label": int(c)} for c in labels]) == [1.0] * 256
    images = blob_images(labels, match_probability=0.0, generator=generator)
    assert sum(flow_shapes_hit(list(images), [{"label": int(c)} for c in labels])) == 0


def preset(tmp_path, run, *extra):
    return load_config(RECIPE, [
        f"model.path={tmp_path / 'generator'}", "model.zoo=tiny-flow-generator-shapes", f"train.output_dir={tmp_path / run}",
        "train.steps=3", "train.progress=false", "data.prompts_per_step=2", "rollout.num_generations=4",
        "data.task_args.heldout_size=8", "eval.batch_size=8", *extra])


def step_rows(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "reward/mean" in r}


def test_cpu_preset_runs_rescores_exactly_and_resumes_exactly(tmp_path, monkeypatch):
    from mmpost.registry import MODEL_ZOO

    # A shorter pre-training keeps the test fast; the recipe's own zoo entry uses the default 150 steps.
    builder = MODEL_ZOO.get("tiny-flow-generator-shapes")
    monkeypatch.setitem(MODEL_ZOO._entries, "tiny-flow-generator-shapes", lambda out, **kw: builder(out, steps=10, **kw))
    straight = mmpost.train(preset(tmp_path, "straight", "eval.heldout=false"))
    assert mmpost.train(preset(tmp_path, "resumed", "train.save_every=1", "train.stop_after=1")) == {"stopped_at": 1}
    resumed = mmpost.train(preset(tmp_path, "resumed", "train.resume=auto"))
    assert straight["steps"] == resumed["steps"] == 3
    expected, got = step_rows(tmp_path / "straight"), step_rows(tmp_path / "resumed")
    for step in (2, 3):  # the resumed steps draw the same noise and update the same weights
        for key in ("reward/mean", "loss/total", "loss/kl", "loss/policy"):
            assert got[step][key] == pytest.approx(expected[step][key], rel=1e-5, abs=1e-8), (step, key)
    for row in got.values():
        # Re-scoring the stored chains gives the sampling log-probs: ratio 1 before the first update.
        assert row["rollout/logprob_mismatch"] < 1e-5
        assert row["loss/kl"] >= 0 and row["loss/kl_coef"] == pytest.approx(0.04)
    checkpoint = Path(resumed["checkpoint"]) / "model"
    assert {"mmpost_generator.json", "config.json", "diffusion_pytorch_model.safetensors"} <= {p.name for p in checkpoint.iterdir()}
    assert 0.0 <= resumed["heldout_accuracy_after"] <= 1.0


def test_generation_modality_turns_conditioning_into_row_tensors():
    from mmpost.modalities.generation import GenerationModality
    from mmpost.types import DataError

    modality = GenerationModality()
    sample = {"id": "x", "conditioning": {"class_labels": 2, "scale": [0.5, 1.5]}}
    encoding = modality.encode_prompt(None, [], modality.decode(sample))
    assert encoding.input_ids.tolist() == [0]
    assert encoding.media["class_labels"].dtype == torch.long and encoding.media["class_labels"].tolist() == [2]
    assert encoding.media["scale"].shape == (1, 2) and encoding.media["scale"].dtype == torch.float32
    with pytest.raises(DataError, match="'x'.*conditioning 'name' must be numbers"):
        modality.decode({"id": "x", "conditioning": {"name": "cat"}})
    with pytest.raises(DataError, match="needs 'conditioning'"):
        modality.encode_prompt(None, [], {"id": "y"})
