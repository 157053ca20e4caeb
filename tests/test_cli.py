"""The recipe CLI and the Python API, run for real."""
import json
import os
import subprocess
import sys

import pytest

import mmpost
from mmpost.cli import main
from conftest import REPO, free_port, tiny_overrides


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
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "mmpost.cli",
         "train", str(REPO / "recipes" / "visurf.yaml"),
         *tiny_overrides(warm_vl_dir, out, **{"train.steps": 2, "train.report_to": "tensorboard"})],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]  # one line per step: only rank 0 writes
    # 4 prompts x 4 generations, split over two processes and summed back.
    assert metrics[0]["rollout/sequences"] == 16
    assert (out / "checkpoints" / "step_2" / "rng_rank1.json").is_file()
    # Only the main process logs to the trackers: every TensorBoard event file comes from one process id.
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and len({path.name.rsplit(".", 2)[1] for path in events}) == 1, events


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
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), "-m",
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


# -- a fast, helpful command line -------------------------------------------------------------------
def test_train_without_a_recipe_lists_the_recipes(capsys):
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "shipped recipes:" in out and "visurf" in out and "world_env" in out and "validate RECIPE --explain" in out


def test_train_help_lists_recipes_and_points_at_explain(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "flow_grpo" in out and "ViSurf" in out and "mmpost validate RECIPE --explain" in out


def test_validate_explain_shows_recipe_values_next_to_defaults(capsys):
    assert main(["validate", "grpo", "optim.lr=0.003", "--explain"]) == 0
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line
             for line in capsys.readouterr().out.splitlines() if line.strip() and not line.startswith("  ok")}
    assert lines["optim.lr"].startswith("*") and "0.003" in lines["optim.lr"] and "1e-05" in lines["optim.lr"]
    assert not lines["optim.eps"].startswith("*")  # unchanged from the default


def test_list_accepts_plurals_and_shows_each_component_once():
    from mmpost.cli import listing_rows, resolve_kind

    assert resolve_kind("rewards") == "reward" and resolve_kind("losses") == "policy_loss"
    assert resolve_kind("recipes") == "recipe" and resolve_kind("modalities") == "modality"
    with pytest.raises(SystemExit, match="did you mean 'reward'"):
        resolve_kind("rewrd")
    rows = dict(listing_rows())
    aggregations = rows["aggregation"].split(", ")
    assert "token_mean (token-mean)" in aggregations and "token-mean" not in aggregations
    assert "k3 (low_var_kl, k3_clamped)" in rows["kl"] and "k1 (kl)" in rows["kl"] and "k2 (mse)" in rows["kl"]
    assert dict(listing_rows("reward")).keys() == {"reward"}


def test_registry_index_lists_exactly_the_imported_registries():
    """The source-read index (what `list`/`validate` use, without importing torch) and the registries after
    importing every built-in module hold the same built-in names; names registered by tests are ignored."""
    from mmpost.registry import ALL_REGISTRIES
    from mmpost.registry_index import builtin_index, known_names

    index = builtin_index()
    for kind, registry in ALL_REGISTRIES.items():
        imported = {name for name, obj in registry.items()
                    if (getattr(obj, "__module__", None) or type(obj).__module__).startswith("mmpost.")}
        assert set(known_names(kind, index)) == imported, kind


def test_validate_checks_task_and_reward_arguments_from_source(capsys):
    assert main(["validate", "grpo", "data.task=vqa", "data.task_args={pth: x.jsonl}"]) == 2
    err = capsys.readouterr().err
    assert "data.task_args" in err and "'pth'" in err and "did you mean 'path'" in err
    assert main(["validate", "grpo", "algorithm.advantage=grp"]) == 2
    assert "did you mean 'grpo'" in capsys.readouterr().err
    assert main(["validate", "grpo", "--deep"]) == 0
    assert "(imported)" in capsys.readouterr().out


def test_list_validate_and_config_errors_do_not_import_torch():
    """What keeps `list`, `validate` and config errors fast (benchmarks/cli_latency.py measures the seconds)."""
    code = ("import sys\nfrom mmpost.cli import main\n"
            "assert main(['list']) == 0\nassert main(['validate', 'visurf']) == 0\n"
            "assert main(['train', 'visurf', 'optim.lrr=1']) == 2\n"
            "heavy = [m for m in ('torch', 'transformers', 'mmpost.modalities', 'mmpost.tasks') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]


def test_eval_help_shows_score_and_search():
    result = subprocess.run([sys.executable, "-m", "mmpost.cli", "eval", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0 and "mmpost eval score" in result.stdout and "mmpost eval search" in result.stdout


def test_eval_score_takes_score_args(tmp_path, capsys):
    rows = [{"box": [0.1, 0.1, 0.2, 0.2], "img_size": [1000, 500], "element_type": "icon", "platform": "ios",
             "response": "(150, 75)", "instruction": "open menu"}]
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps(rows))
    assert main(["eval", "score", "screenspot", str(predictions), "--output", str(tmp_path / "a")]) == 0
    normalized = json.loads((tmp_path / "a" / "results.json").read_text())["results"]["screenspot"]["metrics"]["accuracy"]
    assert main(["eval", "score", "screenspot", str(predictions), "--score-arg", "screenspot.coords=pixels",
                 "--output", str(tmp_path / "b")]) == 0
    pixels = json.loads((tmp_path / "b" / "results.json").read_text())["results"]["screenspot"]["metrics"]["accuracy"]
    assert (normalized, pixels) == (0.0, 1.0)  # (150, 75) px in a 1000x500 image is inside the box; as [0, 1] it is not


def test_every_shipped_recipe_passes_the_source_read_checks():
    from mmpost.cli import RECIPES_DIR
    from mmpost.config import load_config
    from mmpost.registry_index import check_config

    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        checked = check_config(load_config(path))
        assert any(line.startswith("task: ") for line in checked), path


def test_mmpost_makes_waiting_openmp_threads_sleep_unless_a_policy_is_chosen():
    """Spinning OpenMP threads made a step 15-70x slower beside another job (benchmarks/shared_machine.py); mmpost
    sets OMP_WAIT_POLICY=PASSIVE before torch loads, and leaves a policy the user chose."""
    code = "import mmpost, os, sys; assert 'torch' not in sys.modules; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MMPOST_OMP_WAIT_POLICY")}
    run = lambda extra: subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True,
                                       text=True, timeout=120).stdout.strip()
    assert run({}) == "PASSIVE"
    assert run({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    assert run({"MMPOST_OMP_WAIT_POLICY": "keep"}) == "None"
