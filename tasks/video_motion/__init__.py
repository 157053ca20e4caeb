"""The synthetic video_motion task (task "video_motion"): a square moving left/right/up/down in a short mp4."""
from mmpost.tasks.video_motion.task import DIRECTIONS, Motion, VideoMotionTask, centroid_direction, random_motion, render

__all__ = ["DIRECTIONS", "Motion", "VideoMotionTask", "centroid_direction", "random_motion", "render"]
from . import warmup  # noqa: E402,F401  (registers the warm-started zoo model "tiny-qwen2.5-vl-video")
