"""One-line errors and exit codes on the command line: config checks before any model loads, eval score misuse,
a reward that raises, bad data files, secrets; the traceback only with --debug or in the run's train.log."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mmpost.cli import main
from mmpost.config import ConfigError, check_no_secrets, load_config
from mmpost.registry import REWARDS
from conftest import REPO, SHARED_FIXTURES, tiny_overrides

GRPO = REPO / "recipes" / "grpo.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def error_line(capsys) -> str:
    """The one error line on stderr (progress bars of model loading aside), and no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "interrupted:"))]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("overrides,expected", [
    (["rollout.num_generations=1"], "command line (rollout.num_generations=1): rollout.num_generations=1 with "
                                    "algorithm.advantage='grpo'"),
    (["optim.lr=-1e-3"], "command line (optim.lr=-1e-3): optim.lr=-0.001: must be >= 0"),
    (["train.steps=-5"], "command line (train.steps=-5): train.steps=-5: must be >= 1"),
    (["rollout.top_p=1.5"], "rollout.top_p=1.5: must be > 0 and <= 1"),
    (["algorithm.reward_errors=ignore"], "algorithm.reward_errors='ignore': allowed: raise | zero"),
    (["train.resume=auto", "train.overwrite_output_dir=true"], "contradict each other"),
    (["data.task=vqa", "data.task_args={path: d.jsonl}"], "data.task_args.heldout_path: the vqa task's split 'heldout' needs it"),
    (["data.task=vqa"], f"{GRPO}: data.task_args: task 'vqa' does not take ['heldout_size']"),
    (["data.task=vqa", "data.task_args={heldout_path: d.jsonl}"], "data.task_args.path: task 'vqa' needs it"),
    (["data.task=vqa", "data.task_args={path: d.jsonl, skip_bad_rows: true}"], "the row-skipping switch is data.skip_bad_rows"),
    (["data.media_root=/no/such/folder"], "data.media_root='/no/such/folder': not a folder"),
    (["model.path=''", "model.zoo=null"], "model.path is empty"),
    (["rollout.temprature=0.5"], "command line (rollout.temprature=0.5): unknown key 'rollout.temprature'; did you mean "
                                 "'rollout.temperature'?"),
])
def test_validate_names_key_value_allowed_and_origin(capsys, overrides, expected):
    assert main(["validate", str(GRPO), *overrides]) == 2
    assert expected in error_line(capsys)


def test_a_value_from_the_recipe_file_names_the_file(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("optim:\n  lr: -0.5\n")
    assert main(["validate", str(recipe)]) == 2
    assert error_line(capsys).startswith(f"error: {recipe}: optim.lr=-0.5: must be >= 0")


def test_group_relative_check_probes_the_estimator(capsys):
    """ViSurf adds the label to each group, so one rollout per prompt still compares two rows; SFT has no groups."""
    assert main(["validate", "visurf", "rollout.num_generations=1"]) == 0
    assert main(["validate", "sft", "rollout.num_generations=1"]) == 0


def test_vllm_backend_without_vllm(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert main(["validate", "grpo", "rollout.backend=vllm"]) == 2
    line = error_line(capsys)
    assert "rollout.backend='vllm': the vllm package is not installed" in line and "make vllm-env" in line


def test_debug_prints_the_traceback(capsys):
    assert main(["--debug", "validate", "grpo", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "optim.lr=-1.0: must be >= 0" in err


def test_eval_score_misuse_is_one_line_with_exit_code_2(tmp_path, capsys):
    bard = SHARED_FIXTURES / "mathvista" / "output_bard.json"
    assert main(["eval", "score", "mathvista", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: predictions file not found" in error_line(capsys)
    assert main(["eval", "score", "mathvista", str(bard), "--mode", "vlmevalkit"]) == 2
    assert "mode 'vlmevalkit' not supported; choose one of ['official', 'official_2023', 'lmms_eval']" in error_line(capsys)
    drivelm = SHARED_FIXTURES / "drivelm"
    assert main(["eval", "score", "drivelm", str(drivelm / "output.json")]) == 2
    assert "DriveLM predictions need the ground truth" in error_line(capsys)
    assert main(["eval", "score", "drivelm", str(drivelm / "output.json"), "--data", str(tmp_path / "nope")]) == 2
    assert "nope: drivelm data not found (--data)" in error_line(capsys)
    item = json.loads(bard.read_text())["1"]
    item.pop("extraction", None)
    item["response"] = "The spring is squeezed by about one point two metres."  # needs the LLM extraction step
    needs_judge = tmp_path / "needs_judge.json"
    needs_judge.write_text(json.dumps({"1": item}))
    assert main(["eval", "score", "mathvista", str(needs_judge)]) == 2
    line = error_line(capsys)
    assert "MathVista pid 1: the response needs the LLM extraction step" in line and "--judge-endpoint" in line


def test_secrets_are_refused_and_never_echoed(tmp_path):
    out = tmp_path / "run"
    secret = "sk-live0123456789abcdefghij"
    result = subprocess.run(
        [sys.executable, "-m", "mmpost.cli", "train", str(GRPO), f"train.output_dir={out}",
         f"rewards=[{{name: driving_judge, args: {{judge: {{endpoint: 'http://localhost:1/v1', model: m, api_key: {secret}}}}}}}]"],
        capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "rewards[0].args.judge.api_key: credentials are not accepted in a config" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert not (out / "config.yaml").exists()


def test_secret_detection_by_key_and_by_value():
    check_no_secrets({"rollout": {"backend_args": {"pad_token": "<pad>", "api_key_env": "MY_KEY", "max_new_tokens": 4}}})
    for raw in [{"judge": {"api_key": "x"}}, {"hf_token": "x"}, {"model": {"path": "hf_" + "a" * 34}},
                {"endpoint": "https://user:hunter2@example.com/v1"}, {"x": ["Bearer abcdefghijkl"]}]:
        with pytest.raises(ConfigError) as refused:
            check_no_secrets(raw)
        assert refused.value.secret
    from mmpost.judge import Judge

    with pytest.raises(ValueError, match="password in its URL"):
        Judge(endpoint="https://user:hunter2@judge.example/v1", model="m")
    config = load_config(GRPO, ["rollout.backend_args={token: abc}"])
    from mmpost.config import check_values

    with pytest.raises(ConfigError, match=r"command line \(rollout.backend_args=\.\.\.\): rollout.backend_args.token"):
        check_values(config)


@REWARDS.register("test_explodes")
def explodes(completions, samples, **_):
    raise ValueError("no score for " + samples[0]["id"])


def test_training_errors_on_the_command_line(tiny_vl_dir, tmp_path, capsys):
    """Through `mmpost train` (main(), as the console script calls it): a reward that raises is one line (reward,
    sample id, exception) and exit code 1, the traceback in train.log; a non-UTF-8 data line is one line naming file
    and line, exit code 2; vLLM missing: exit 2 from a real process, before the zoo model is built."""
    out = tmp_path / "run"
    common = tiny_overrides(tiny_vl_dir, out, **{"train.steps": 1, "eval.heldout": "false"})
    assert main(["train", str(GRPO), *common, "rewards=[{name: test_explodes}]"]) == 1
    line = error_line(capsys)
    assert "reward 'test_explodes' raised on sample id 'shapes-train-" in line and "ValueError: no score for" in line
    assert f"(full traceback: {out / 'train.log'})" in line
    assert "Traceback" in (out / "train.log").read_text()

    data = tmp_path / "data.jsonl"
    data.write_bytes(b'{"id": "a", "problem": "colour?", "answer": "red"}\n{"id": "b", "problem": "caf\xe9?", "answer": "x"}\n')
    assert main(["train", str(GRPO), *tiny_overrides(tiny_vl_dir, tmp_path / "vqa", **{"train.steps": 1}),
                 "data.task=vqa", f"data.task_args={{path: {data}}}", "eval.heldout=false"]) == 2
    assert f"error: {data}:2: not UTF-8 text (byte 0xe9 at column 28)" in error_line(capsys)

    missing_model = tmp_path / "not-built"
    result = subprocess.run([sys.executable, "-m", "mmpost.cli", "train", str(GRPO),
                             *tiny_overrides(missing_model, tmp_path / "vllm"), "model.zoo=tiny-qwen2.5-vl",
                             "rollout.backend=vllm"], capture_output=True, text=True, timeout=300, env=ENV)
    if importlib.util.find_spec("vllm") is None:
        assert result.returncode == 2 and "the vllm package is not installed" in result.stderr
        assert "Traceback" not in result.stderr and not missing_model.exists()  # refused before the zoo model was built
