"""Rollout backends: batched generation with n samples per prompt behind one protocol."""
from mmpost.rollout.base import GenerationResult, RolloutBackend, SamplingParams
from mmpost.rollout import hf  # noqa: F401  (registers "hf")
from mmpost.rollout import vllm  # noqa: F401  (registers "vllm"; vllm itself is imported lazily)

__all__ = ["GenerationResult", "RolloutBackend", "SamplingParams"]
