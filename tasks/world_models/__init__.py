"""World models post-trained with RLIR (issue #5): the DotGrid ground truth, inverse dynamics models, the AR
world-model task "rlir_ar", its IDM rewards, frame-level GRPO and the "rlir" experience source; see README.md."""
from mmpost.tasks.world_models.gridworld import (
    ACTION_DELTAS, ACTION_NAMES, NUM_ACTIONS, SPLITS, DotGridEnv, collect_trajectories, render, trajectory_split,
)
from mmpost.tasks.world_models.idm import (
    InverseDynamicsModel, idm_accuracy, idm_action_probs, idm_artifact, idm_displacements, load_idm, save_idm, train_idm,
)
from mmpost.tasks.world_models.advantages import grpo_frame, token_advantages
from mmpost.tasks.world_models.rewards import (
    continuous_action_reward, frame_scores, generated_frames, idm_continuous, idm_exact, idm_gold_exact, idm_soft, pixel_mae,
)
from mmpost.tasks.world_models.task import RlirArTask
from mmpost.tasks.world_models import source, warmup  # noqa: F401  (experience source "rlir", zoo "tiny-ar-world-model-sft")

__all__ = ["ACTION_DELTAS", "ACTION_NAMES", "NUM_ACTIONS", "SPLITS", "DotGridEnv", "InverseDynamicsModel", "RlirArTask",
           "collect_trajectories", "continuous_action_reward", "frame_scores", "generated_frames", "grpo_frame",
           "idm_accuracy", "idm_action_probs", "idm_artifact", "idm_continuous", "idm_displacements", "idm_exact",
           "idm_gold_exact", "idm_soft", "load_idm", "pixel_mae", "render", "save_idm", "token_advantages", "train_idm",
           "trajectory_split"]
