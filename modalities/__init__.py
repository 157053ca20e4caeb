"""Modality adapters (mmpost.modalities): each subpackage registers its modality and tiny-model builders.

Importing this package registers them all; the registries name it as their built-in module.
"""
from . import image  # noqa: F401  (registers the "image" modality and the "tiny-qwen2.5-vl" zoo entry)
from . import audio  # noqa: F401  (registers the "audio" modality and the "tiny-qwen2-audio" zoo entry)
from . import video  # noqa: F401  (registers the "video" modality)
from . import gui  # noqa: F401  (registers the "gui" modality and rewards gui_point_in_box, gui_point_distance, gui_click_format)
from . import driving  # noqa: F401  (registers the "driving" modality and rewards driving_trajectory, driving_judge)
from . import robot  # noqa: F401  (registers the "robot" modality and the "tiny-vla-qwen2.5-vl" zoo entry)
from . import frames  # noqa: F401  (registers the "frames" modality and the "tiny-ar-world-model" zoo entry)
from . import generation  # noqa: F401  (registers the "generation" modality and the "tiny-flow-generator" zoo entry)
