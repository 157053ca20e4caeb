"""The audio modality: loading and resampling, Qwen2-Audio prompt encoding, and the tiny Qwen2-Audio builder."""
from .adapter import AudioModality, count_audio_placeholders
from .processing import LoadedAudio, load_audio, qwen2_audio_embedding_count, resample
from .tiny import QWEN2_AUDIO_CHAT_TEMPLATE, build_tiny_qwen2_audio

__all__ = [
    "AudioModality",
    "LoadedAudio",
    "QWEN2_AUDIO_CHAT_TEMPLATE",
    "build_tiny_qwen2_audio",
    "count_audio_placeholders",
    "load_audio",
    "qwen2_audio_embedding_count",
    "resample",
]
