"""The recipe CLI and the Python API, run for real."""
import json
import os
import subprocess
import sys

import pytest

import mmpost
from mmpost.cli import main
from conftest import REPO, tiny_overrides


def test_list_shows_every_kind(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["visurf", "grpo", "dr_grpo", "ppo_clip", "gspo", "k3", "token_mean", "image", "shapes", "exact_match", "tiny-qwen2.5-vl"]:
        assert name in out, name


def test_validate_and_unknown_key(capsys):
    assert main(["validate", "visurf"]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["validate", str(REPO / "recipes" / "grpo.yaml"), "rollout.temprature=0.5"]) == 2
    assert "rollout.temperature" in capsys.readouterr().err
    assert main(["validate", "visurff"]) == 2  # a usage error: one line, exit code 2
    assert "did you mean 'visurf'" in capsys.readouterr().err


def test_zoo_build_loads_through_hub_path(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert main(["zoo", "build", "tiny-qwen2.5-vl", "--out", str(tmp_path / "m")]) == 0
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "m")
    AutoProcessor.from_pretrained(tmp_path / "m")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"


def test_python_api_with_a_custom_reward(warm_vl_dir, tmp_path):
    @mmpost.register_reward("says_red")
    def says_red(completions, samples, **_):
        return [1.0 if "red" in c else 0.0 for c in completions]

    config = mmpost.load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(warm_vl_dir, tmp_path / "api", **{"train.steps": 2}))
    config.rewards = [{"name": "says_red", "weight": 1.0}]
    summary = mmpost.train(config)
    metrics = [json.loads(line) for line in (tmp_path / "api" / "metrics.jsonl").read_text().splitlines()]
    assert "reward/says_red" in metrics[0] and summary["steps"] == 2


@pytest.mark.multiprocess
def test_recipe_runs_under_torchrun_two_processes(warm_vl_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", "-m", "mmpost.cli",
         "train", str(REPO / "recipes" / "visurf.yaml"), *tiny_overrides(warm_vl_dir, out, **{"train.steps": 2})],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]  # one line per step: only rank 0 writes
    # 4 prompts x 4 generations, split over two processes and summed back.
    assert metrics[0]["rollout/sequences"] == 16
    assert (out / "checkpoints" / "step_2" / "rng_rank1.json").is_file()


def test_eval_score_through_the_cli_reproduces_mathvista(tmp_path):
    """`mmpost eval score` on the published Bard outputs gives the published accuracy (scores_bard.json: 34.8)."""
    from conftest import SHARED_FIXTURES

    predictions = SHARED_FIXTURES / "mathvista" / "output_bard.json"
    assert predictions.is_file(), f"missing third-party fixture {predictions}"
    assert main(["eval", "score", "--benchmark", "mathvista", "--predictions", str(predictions), "--mode", "official_2023",
                 "--output", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["results"]["mathvista"]["counts"]["correct"] == 348
    assert (tmp_path / "samples_mathvista.jsonl").is_file()


@pytest.mark.multiprocess
def test_recipe_runs_under_fsdp2_and_resumes_from_sharded_checkpoint(warm_vl_dir, tmp_path):
    """The whole loop under FSDP2 (2 processes, gloo): rollouts with sharded weights, update, sharded checkpoint
    (per-rank safetensors shards + a gathered model), then resume=auto continues from it."""
    out = tmp_path / "fsdp2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534", "-m",
               "mmpost.cli", "train", str(REPO / "recipes" / "grpo.yaml"),
               *tiny_overrides(warm_vl_dir, out, **{"train.steps": 3, "train.stop_after": 2, "train.save_every": 1,
                                                   "distributed.strategy": "fsdp2", "data.heldout_size": 3})]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    step_2 = out / "checkpoints" / "step_2"
    assert (out / "checkpoints" / "latest").read_text() == "step_2"
    for rank in (0, 1):
        assert (step_2 / "sharded" / f"model_rank{rank}.safetensors").is_file()
        assert (step_2 / "sharded" / f"optimizer_rank{rank}.safetensors").is_file()
    assert (step_2 / "model" / "model.safetensors").is_file()  # gathered full weights
    resumed = subprocess.run([*command, "train.resume=auto", "train.stop_after=null"], capture_output=True, text=True,
                             timeout=600, env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and 0.0 <= summary["heldout_accuracy_after"] <= 1.0


def test_flow_grpo_recipe_runs_from_the_command_line(tmp_path):
    """A denoising-policy recipe through the CLI itself (zoo build of the generator included)."""
    out = tmp_path / "flow"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mmpost.cli", "train", str(REPO / "recipes" / "flow_grpo.yaml"),
         f"model.path={tmp_path / 'generator'}", f"train.output_dir={out}", "train.steps=2", "train.threads=1",
         "train.progress=false", "data.prompts_per_step=2", "rollout.num_generations=4", "data.task_args.heldout_size=8",
         "eval.batch_size=8"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "heldout_accuracy_after" in result.stdout
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and "loss/kl" in metrics[0]
    assert (out / "checkpoints" / "step_2" / "model" / "mmpost_generator.json").is_file()
