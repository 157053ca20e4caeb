"""Shared fixtures: tiny models are built once per test session (seconds, not minutes)."""
import os
import socket
from pathlib import Path

import pytest
import torch

# Two cores: more torch threads than that only spin. Each test that trains sets train.threads too.
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def tiny_vl_dir(tmp_path_factory) -> Path:
    from mmpost.registry import MODEL_ZOO

    return Path(MODEL_ZOO.get("tiny-qwen2.5-vl")(tmp_path_factory.mktemp("zoo") / "tiny-qwen2.5-vl"))


@pytest.fixture(scope="session")
def warm_vl_dir(tmp_path_factory) -> Path:
    """The shapes-warm-started tiny model, with a shorter warm-up than the shipped zoo entry."""
    from mmpost.registry import MODEL_ZOO

    return Path(MODEL_ZOO.get("tiny-qwen2.5-vl-shapes")(tmp_path_factory.mktemp("zoo") / "warm", steps=60))


def free_port() -> int:
    """A port no one listens on now, for a torchrun rendezvous: fixed ports collide when two test runs share the
    machine (worktrees side by side), and two tests had the same one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_overrides(model_dir: Path, output_dir: Path, **extra) -> list[str]:
    """A recipe's tiny CPU preset: few prompts, short completions, one thread, no progress bar."""
    values = {
        "model.path": str(model_dir), "model.zoo": "null", "train.output_dir": str(output_dir), "train.threads": 1,
        "train.progress": "false", "data.prompts_per_step": 4, "rollout.num_generations": 4,
        "rollout.max_new_tokens": 8, "data.heldout_size": 8,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]
