"""The video modality: decord / PyAV decoding with qwen-vl-utils' frame sampling, mixed image + video prompts
for Qwen-VL, fitting media to a token budget, and video fixtures (`tiny.write_video`)."""
from .adapter import VideoModality, count_video_placeholders
from mmpost.modalities.token_budget import MediaItem, MediaPlan, fit_media_to_budget
from .processing import DecodedVideo, frame_indices, load_video
from .tiny import TINY_VIDEO_MODEL, write_video

__all__ = [
    "DecodedVideo",
    "MediaItem",
    "MediaPlan",
    "TINY_VIDEO_MODEL",
    "VideoModality",
    "count_video_placeholders",
    "fit_media_to_budget",
    "frame_indices",
    "load_video",
    "write_video",
]
