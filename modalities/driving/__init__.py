"""The driving modality: multi-camera frames, ego state, waypoint answers, DriveLM reader, OpenREAD rewards."""
from . import rewards  # noqa: F401  (registers driving_trajectory and driving_judge)
from .adapter import DrivingModality, camera_content
from .drivelm import QA_CATEGORIES, read_drivelm, resolve_camera_path
from .processing import (
    NUSCENES_CAMERAS,
    format_ego_state,
    format_waypoints,
    parse_waypoints,
    per_second_l2,
    trajectory_reward_value,
    waypoints_or_malformed,
)
from .rewards import JUDGE_REWARD_STATS, build_judge, critic_score, token_overlap_judge
from .tiny import write_tiny_drivelm

__all__ = [
    "JUDGE_REWARD_STATS", "NUSCENES_CAMERAS", "QA_CATEGORIES", "DrivingModality", "build_judge", "camera_content",
    "critic_score", "format_ego_state", "format_waypoints", "parse_waypoints", "per_second_l2", "read_drivelm",
    "resolve_camera_path", "token_overlap_judge", "trajectory_reward_value", "waypoints_or_malformed",
    "write_tiny_drivelm",
]
