"""Modality adapters (mmpost.modalities): each subpackage registers its modality and tiny-model builders.

Importing this package registers them all; the registries name it as their built-in module.
"""
from . import image  # noqa: F401  (registers the "image" modality and the "tiny-qwen2.5-vl" zoo entry)
from . import audio  # noqa: F401  (registers the "audio" modality and the "tiny-qwen2-audio" zoo entry)
