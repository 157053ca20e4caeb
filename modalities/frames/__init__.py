"""The frames modality: frame sequences as pixel tokens for autoregressive world models (RLIR), tiny AR world model."""
from .adapter import FramesModality
from .processing import (
    FrameVocabulary,
    completion_token_names,
    dequantize,
    frame_token_names,
    frames_from_token_names,
    prompt_token_names,
    quantize,
)
from .tiny import build_frame_tokenizer, build_tiny_ar_world_model

__all__ = [
    "FrameVocabulary", "FramesModality", "build_frame_tokenizer", "build_tiny_ar_world_model", "completion_token_names",
    "dequantize", "frame_token_names", "frames_from_token_names", "prompt_token_names", "quantize",
]
