"""The synthetic video_motion task (task "video_motion"): a square moving left/right/up/down in a short mp4."""
from mmpost.tasks.video_motion.task import DIRECTIONS, Motion, VideoMotionTask, centroid_direction, random_motion, render

__all__ = ["DIRECTIONS", "Motion", "VideoMotionTask", "centroid_direction", "random_motion", "render"]
