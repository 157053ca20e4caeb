"""Driving tasks (registered as "driving_waypoints" and "drivelm"); see README.md."""
from mmpost.tasks.driving.render import DrivingScene, arc_point, future_waypoints, random_scene, render_scene
from mmpost.tasks.driving.task import DriveLMTask, DrivingWaypointsTask, scene_split

__all__ = ["DriveLMTask", "DrivingScene", "DrivingWaypointsTask", "arc_point", "future_waypoints", "random_scene",
           "render_scene", "scene_split"]
from . import warmup  # noqa: E402,F401  (registers the warm-started zoo model "tiny-qwen2.5-vl-driving")
