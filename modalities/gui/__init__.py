"""The GUI modality: screenshots with element boxes, explicit coordinate conventions, grounding rewards."""
from . import rewards  # noqa: F401  (registers gui_point_in_box, gui_point_distance, gui_click_format)
from .adapter import GuiModality, with_appended_text
from mmpost.rewards.geometry import box_centre, distance_to_box, point_in_box, xywh_to_xyxy

from .processing import (
    COORDINATE_SYSTEMS,
    box_outside_image,
    clip_box,
    convert_box,
    convert_point,
    format_point,
    resolution_sentence,
)
from .tiny import write_tiny_screenshot_rows

__all__ = [
    "COORDINATE_SYSTEMS", "GuiModality", "box_centre", "box_outside_image", "clip_box", "convert_box", "convert_point",
    "distance_to_box", "format_point", "point_in_box", "resolution_sentence", "with_appended_text", "xywh_to_xyxy",
    "write_tiny_screenshot_rows",
]
