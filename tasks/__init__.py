"""Tasks: a dataset with its prompt, its demonstration text and its default rewards, registered in `TASKS`.

Importing this package registers the built-ins: "shapes" (synthetic images, the CPU test bed) and
"vqa" (the user's own image question-answer rows).
"""
from mmpost.tasks import shapes, vqa

__all__ = ["shapes", "vqa"]
from mmpost.tasks import audio_mcq  # noqa: E402,F401  (task "audio_mcq", rewards "r1aqa_accuracy", "r1aqa_format", "audiomcq_accuracy")
from mmpost.tasks import gui_click  # noqa: E402,F401  (task "gui_click")
from mmpost.tasks import driving  # noqa: E402,F401  (tasks "driving_waypoints", "drivelm")
from mmpost.tasks import robot_reach  # noqa: E402,F401  (task "robot_reach", rewards robot_reach_progress/_success, robot_action_format)
from mmpost.tasks import video_motion  # noqa: E402,F401  (task "video_motion")
from mmpost.tasks import mm_upt  # noqa: E402,F401  (task "digit_sum", rewards "mm_upt_majority_vote", "mm_upt_label_accuracy", zoo "tiny-qwen2.5-vl-mmupt")
from mmpost.tasks import propa  # noqa: E402,F401  (task "propa_digits", reward "propa_answer", zoo "tiny-qwen2.5-vl-propa"; registers mmpost.search sources)
from mmpost.tasks.audio_mcq import warmup as _audio_warmup  # noqa: E402,F401  (zoo "tiny-qwen2-audio-mcq")
from mmpost.tasks import world_models  # noqa: E402,F401  (task "rlir_ar", rewards idm_*/pixel_mae, source "rlir", zoo tiny-ar-world-model-sft, dotgrid-idm*)
from mmpost.tasks import flow_shapes  # noqa: E402,F401  (task "flow_grpo_shapes", rewards flow_shapes_contrast/_hit, zoo "tiny-flow-generator-shapes")
from mmpost.tasks.world_models import diffusion_task as _rlir_diffusion  # noqa: E402,F401  (task "rlir_diffusion", rewards idm_*_frames/pixel_mae_frames, zoo "tiny-diffusion-world-model-sft")
from mmpost.tasks import world_env  # noqa: E402,F401  (task "world_env", envs world_env_world_model/_ground_truth, zoo world-env-reach-wm, world-env-reflector, tiny-vla-world-env)
