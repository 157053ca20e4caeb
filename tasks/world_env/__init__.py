"""World-Env (issue #5): a VLA trained with GRPO in a learned world model, measured in the ground truth.

Registers task "world_env", environments "world_env_world_model" / "world_env_ground_truth", zoo entries
"world-env-reach-wm", "world-env-reach-wm-policy" (trained on the policy's episodes), "world-env-reflector",
"world-env-reflector-wm" (calibrated on world-model frames),
"tiny-vla-world-env"; see README.md and recipes/world_env.md.
"""
from mmpost.tasks.world_env.env import GYM_ID, TASK_TARGETS, ReachEnv, WorldEnvConfig, render_frame, success_score
from mmpost.tasks.world_env.models import Reflector, WorldModelGenerator, load_reflector, load_world_model
from mmpost.tasks.world_env.task import WorldEnvTask
from mmpost.tasks.world_env import calibration  # noqa: F401  (registers "world-env-reflector-wm")
from mmpost.tasks.world_env import coverage  # noqa: F401  (registers "world-env-reach-wm-policy")

__all__ = ["GYM_ID", "TASK_TARGETS", "ReachEnv", "Reflector", "WorldEnvConfig", "WorldEnvTask", "WorldModelGenerator",
           "load_reflector", "load_world_model", "render_frame", "success_score"]
