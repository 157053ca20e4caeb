"""Tasks: a dataset with its prompt, its demonstration text and its default rewards, registered in `TASKS`.

Importing this package registers the built-ins: "shapes" (synthetic images, the CPU test bed) and
"vqa" (the user's own image question-answer rows).
"""
from mmpost.tasks import shapes, vqa

__all__ = ["shapes", "vqa"]
