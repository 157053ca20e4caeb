"""Video fixtures for tests and CPU recipes: real video files written with PyAV, and the tiny model to use.

There is no separate tiny video model: the zoo's tiny Qwen2.5-VL (`tiny-qwen2.5-vl`, built by
`mmpost.modalities.image.tiny`) has a `Qwen2VLVideoProcessor` and a vision tower with temporal patches of
2 frames, so it is the video model too (`TINY_VIDEO_MODEL`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

TINY_VIDEO_MODEL = "tiny-qwen2.5-vl"
CODECS = {".mp4": "libx264", ".mkv": "libx264", ".avi": "mpeg4", ".webm": "libvpx"}


def write_video(frames: Sequence[np.ndarray] | np.ndarray, path: str | os.PathLike, *, fps: int = 8,
                codec: str | None = None) -> Path:
    """Encode RGB uint8 frames [T, H, W, 3] (H, W even) into a real video file with PyAV.

    The codec follows the extension (mp4: H.264 in yuv420p, avi: MPEG-4 part 2, webm: VP8) unless given.
    Lossy: decoded pixels differ from the input by a few levels, flat colour regions stay recognisable.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"write_video: yuv420p needs even height and width, got {frames.shape[2]}x{frames.shape[1]}")
    codec = codec or CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"write_video: no default codec for {path.suffix!r}; pass codec=")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # Near-lossless and no B-frame reordering surprises; one thread keeps CPU tests predictable.
            stream.options = {"crf": "10", "preset": "ultrafast", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
