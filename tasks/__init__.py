"""Tasks: a dataset with its prompt, its demonstration text and its default rewards, registered in `TASKS`.

Importing this package registers the built-ins: "shapes" (synthetic images, the CPU test bed) and
"vqa" (the user's own image question-answer rows).
"""
from mmpost.tasks import shapes, vqa

__all__ = ["shapes", "vqa"]
from mmpost.tasks import audio_mcq  # noqa: E402,F401  (task "audio_mcq", rewards "r1aqa_accuracy", "r1aqa_format", "audiomcq_accuracy")
