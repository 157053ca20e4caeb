"""Environments for acting policies: the batched, chunked `Env` protocol, its three kinds (any gymnasium env, a
learned world model, a one-step generation env) and the `env_rollouts` experience source.

Registers ENVIRONMENTS "gym", "world_model", "generation"; EXPERIENCE_SOURCES "env_rollouts"; REWARDS
"episode_return", "episode_success". Engine level: imports no modality or task.
"""
from mmpost.envs.base import Env, EpisodeStats, StepResult, check_action_chunks
from mmpost.envs.generation import GenerationEnv
from mmpost.envs.gym import GymEnv
from mmpost.envs.source import EnvRollouts, Episode, PolicyCall, build_environment, episode_metrics, run_episodes
from mmpost.envs.world_model import WorldModelEnv

__all__ = ["Env", "EnvRollouts", "Episode", "EpisodeStats", "GenerationEnv", "GymEnv", "PolicyCall", "StepResult",
           "WorldModelEnv", "build_environment", "check_action_chunks", "episode_metrics", "run_episodes"]
