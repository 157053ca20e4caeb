"""The README says what is true: every command line in its bash code blocks runs and exits 0, unless it is on the
allow-list below with the reason it cannot run here in seconds. A command added to the README is therefore tested
by default; one that changes must be re-listed (a stale entry fails `test_allow_list_names_only_readme_commands`).

Commands run from a scratch folder that sees the repository's `recipes/` and `examples/`, with `../shared` pointing at
the shared fixtures as it does from the repository, offline (HF_HUB_OFFLINE=1) and with one torch thread.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"

# Command -> why it does not run in the test suite. Everything else in a bash block runs.
NOT_RUN_HERE = {
    "make demo": "set-up plus 100 training steps: minutes (the demo recipe runs in tests/test_recipes.py)",
    "make test": "the whole suite",
    "mmpost train recipes/visurf.yaml": "trains the default recipe: minutes (tests/test_recipes.py runs its tiny preset)",
    "mmpost train grpo optim.lr=1e-3 rollout.num_generations=4 train.output_dir=runs/g4": "trains: minutes",
    "mmpost train grpo train.report_to=[tensorboard,wandb]": "trains, and W&B needs an account or WANDB_MODE=offline "
                                                            "(tests/test_trackers.py runs both trackers)",
    "mmpost train grpo model.path=models/tiny model.zoo=null": "trains: minutes",
    "mmpost eval --model runs/visurf --benchmark mathvista --limit 50": "needs a trained run and the network "
                                                                       "(tests/test_eval_published.py)",
    "torchrun --nproc_per_node 2 -m mmpost.cli train visurf": "two training processes: minutes (tests/test_cli.py "
                                                             "runs the tiny preset under torchrun)",
    "torchrun --nproc_per_node 8 -m mmpost.cli train grpo distributed.strategy=fsdp2": "8 processes",
    "mmpost train grpo rollout.backend=vllm": "needs vLLM (tests/test_vllm_backend.py in .venv-vllm)",
    "mmpost train flow_grpo": "trains: minutes (tests/test_cli.py runs its tiny preset)",
    "mmpost train rlir_diffusion": "builds world models and trains: minutes",
    "mmpost train grpo data.task=vqa data.task_args='{path: data/train.jsonl, heldout_path: data/val.jsonl}'":
        "your data (tests/test_vqa_formats.py trains on each layout)",
    "mmpost train grpo data.task=vqa data.task_args='{path: geo3k/train.parquet, heldout_path: geo3k/test.parquet}'":
        "your data",
    "mmpost train sft data.task=vqa data.task_args='{path: llava.json, heldout_path: llava_val.json, format: llava}'":
        "your data",
    "mmpost train grpo data.task=vqa data.task_args='{path: org/dataset, heldout_path: org/dataset, heldout_split: test}'":
        "a placeholder hub id and the network",
    "pip install examples/plugin_pointcloud": "installs into the environment (tests/test_plugin_example.py does, offline)",
    "mmpost train recipes/grpo.yaml data.task=pointcloud_axis model.path=artifacts/tiny-qwen2.5-vl model.zoo=tiny-qwen2.5-vl":
        "needs the plugin installed; trains (tests/test_plugin_example.py)",
    "mmpost eval --model runs/visurf --benchmark screenspot,refcoco,mathvista --output eval_results":
        "needs a trained run and the network",
    "mmpost eval --model runs/visurf --benchmark mathvista --data DATA_DIR --limit 100 --max-new-tokens 512 "
    "--judge-endpoint http://localhost:8000/v1 --judge-model NAME": "placeholders (DATA_DIR, a judge endpoint)",
    "torchrun --nproc_per_node 2 -m mmpost.cli eval --model runs/visurf --benchmark mathvista":
        "needs a trained run and the network",
    "mmpost eval search --model runs/propa --strategy prm_mcts --prm runs/propa_prm --task propa_digits --limit 64":
        "needs trained PROPA policy and PRM runs (tests/test_eval_search.py)",
}


def readme_commands(text: str) -> list[str]:
    """Command lines of the ```bash blocks: continuation lines joined, comments and blank lines dropped."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def normalise(command: str) -> str:
    """One spelling per command (the shell's words, re-quoted), so the allow-list matches however the README quotes."""
    return shlex.join(shlex.split(command, comments=True))


COMMANDS = readme_commands(README.read_text())
SKIPPED = {normalise(c) for c in NOT_RUN_HERE}
RUN = [c for c in COMMANDS if normalise(c) not in SKIPPED]


def test_the_readme_has_commands_and_some_run():
    assert len(COMMANDS) > 20 and len(RUN) >= 6, (len(COMMANDS), RUN)


def test_allow_list_names_only_readme_commands():
    present = {normalise(c) for c in COMMANDS}
    stale = [c for c in NOT_RUN_HERE if normalise(c) not in present]
    assert not stale, f"allow-listed commands no longer in the README: {stale}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder beside a `shared` link, as the repository sits beside ../shared; recipes and examples linked in."""
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").symlink_to(REPO.parent / "shared")
    work = root / "work"
    work.mkdir()
    for name in ("recipes", "examples"):
        (work / name).symlink_to(REPO / name)
    return work


@pytest.mark.parametrize("command", RUN)
def test_readme_command_runs(command, scratch):
    words = shlex.split(command)
    program = {"mmpost": [sys.executable, "-m", "mmpost.cli"], "python": [sys.executable]}.get(words[0])
    assert program is not None, f"README command {command!r} starts with {words[0]!r}: run it here or allow-list it"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MMPOST_CACHE": str(scratch / "cache"),
           "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(program + words[1:], cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stderr[-3000:]}"
