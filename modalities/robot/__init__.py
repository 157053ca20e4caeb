"""The robot modality: frames + proprioception -> action-chunk tokens (OpenVLA-style binning), tiny VLA."""
from .adapter import RobotModality, format_proprio
from .processing import (
    DEFAULT_BINS,
    ActionStats,
    ActionTokenizer,
    add_action_tokens,
    bin_centres,
    discretize,
    parse_action_bins,
    restrict_logits,
    suppressed_token_ids_for,
)
from .tiny import build_tiny_vla_qwen2_5_vl

__all__ = [
    "DEFAULT_BINS", "ActionStats", "ActionTokenizer", "RobotModality", "add_action_tokens", "bin_centres",
    "build_tiny_vla_qwen2_5_vl", "discretize", "format_proprio", "parse_action_bins", "restrict_logits",
    "suppressed_token_ids_for",
]
