"""mmpost: post-training multimodal models with SFT and reinforcement learning.

Python API::

    import mmpost

    @mmpost.register_reward("my_reward")
    def my_reward(completions, samples, **_):
        return [1.0 if "cat" in c else 0.0 for c in completions]

    config = mmpost.load_config("recipes/grpo.yaml", ["rewards=[{name: my_reward}]"])
    summary = mmpost.train(config)
"""
from mmpost.config import Config, load_config
from mmpost.registry import (
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
