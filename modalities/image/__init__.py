"""The image modality: loading, Qwen-VL's pixel budget, prompt encoding, and the tiny Qwen2.5-VL builder."""
from .adapter import ImageModality, count_image_placeholders, processor_pixel_budget
from .processing import fit_pixels, load_image, resized_size
from .tiny import build_tiny_qwen2_5_vl

__all__ = [
    "ImageModality",
    "build_tiny_qwen2_5_vl",
    "count_image_placeholders",
    "fit_pixels",
    "load_image",
    "processor_pixel_budget",
    "resized_size",
]
