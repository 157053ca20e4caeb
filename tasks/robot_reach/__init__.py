"""The synthetic robot reaching task (registered as task "robot_reach" and its rewards); see README.md."""
from mmpost.tasks.robot_reach.sim import ReachConfig, distance, expert_action, expert_chunk, render, rollout, step
from mmpost.tasks.robot_reach.task import RobotReachTask, episode_split, reach_progress

__all__ = ["ReachConfig", "RobotReachTask", "distance", "episode_split", "expert_action", "expert_chunk", "reach_progress",
           "render", "rollout", "step"]
