"""mmpost: post-training multimodal models with SFT and reinforcement learning.

Python API::

    import mmpost

    @mmpost.register_reward("my_reward")
    def my_reward(completions, samples, **_):
        return [1.0 if "cat" in c else 0.0 for c in completions]

    config = mmpost.load_config("recipes/grpo.yaml", ["rewards=[{name: my_reward}]"])
    summary = mmpost.train(config)
"""
import os as _os

# OpenMP threads that wait for work spin (GNU libgomp's default), burning the core another job on the machine needs:
# with 2 torch threads on 2 busy cores a GRPO step took 15-70x longer than with PASSIVE, which makes waiting threads
# sleep (benchmarks/shared_machine.py). libgomp reads the policy when torch loads, so it is set here, before mmpost
# imports torch, and only when the user has chosen none (MMPOST_OMP_WAIT_POLICY=keep leaves libgomp's default).
if "OMP_WAIT_POLICY" not in _os.environ and _os.environ.get("MMPOST_OMP_WAIT_POLICY", "").lower() != "keep":
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from mmpost.config import Config, load_config  # noqa: E402
from mmpost.registry import (  # noqa: E402
    ADVANTAGES, AGGREGATIONS, EXPERIENCE_SOURCES, KL_ESTIMATORS, MODALITIES, MODEL_ZOO, POLICY_LOSSES, REWARDS,
    ROLLOUT_BACKENDS, SFT_LOSSES, TASKS,
)

__version__ = "0.1.0"

register_reward = REWARDS.register
register_task = TASKS.register
register_modality = MODALITIES.register
register_advantage = ADVANTAGES.register
register_policy_loss = POLICY_LOSSES.register


def train(config: Config) -> dict:
    """Run a training recipe; returns its summary."""
    from mmpost.trainer import train as _train

    return _train(config)


__all__ = [
    "Config", "load_config", "train", "register_reward", "register_task", "register_modality", "register_advantage",
    "register_policy_loss", "ADVANTAGES", "AGGREGATIONS", "EXPERIENCE_SOURCES", "KL_ESTIMATORS", "MODALITIES",
    "MODEL_ZOO", "POLICY_LOSSES", "REWARDS", "ROLLOUT_BACKENDS", "SFT_LOSSES", "TASKS",
]
