"""Video decoding and frame sampling with qwen-vl-utils' conventions.

A video is read with decord and, when decord cannot open or decode it, with PyAV. Which frames are kept
follows `qwen_vl_utils.vision_process`: `calculate_video_frame_range` (optional `video_start` /
`video_end` seconds), `smart_nframes` (`nframes`, or `fps` with `min_frames` / `max_frames`, always an
even count because Qwen2-VL's temporal patch is 2 frames), indices `linspace(start, end, nframes)`
rounded, and `sample_fps = nframes / total_frames * video_fps`. The per-frame pixel budget is
`fetch_video`'s: `max_pixels = max(min(max_pixels, total_pixels / nframes * 2), 1.05 * min_pixels)`,
then `smart_resize`.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from qwen_vl_utils.vision_process import (
    FPS,
    FPS_MAX_FRAMES,
    FPS_MIN_FRAMES,
    FRAME_FACTOR,
    calculate_video_frame_range,
    smart_nframes,
    smart_resize,
)

from mmpost.types import MediaError
from mmpost.modalities.common import resolve_media_path

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".flv", ".mpeg", ".mpg")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Keys of a qwen-vl-utils video element that choose frames; a sample's video entry may carry them.
SAMPLING_KEYS = ("fps", "nframes", "min_frames", "max_frames", "video_start", "video_end")
PIXEL_KEYS = ("min_pixels", "max_pixels", "total_pixels")


@dataclass
class DecodedVideo:
    """Sampled frames of one video and how they were chosen."""

    frames: torch.Tensor  # [T, 3, H, W] uint8, T even
    source: str
    video_fps: float  # the file's frame rate
    total_frames: int  # frames in the chosen time range
    frame_indices: list[int]  # indices into the file's frames, one per row of `frames`
    backend: str  # "decord" | "pyav" | "frames"
    actions: list[str] = field(default_factory=list)

    @property
    def sample_fps(self) -> float:
        """Frames per second of the sampled frames (qwen-vl-utils' `sample_fps`)."""
        return len(self.frame_indices) / max(self.total_frames, 1e-6) * self.video_fps

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "video_fps": self.video_fps, "total_frames": self.total_frames,
                "frame_indices": list(self.frame_indices), "sample_fps": self.sample_fps,
                "backend": self.backend, "size": (int(self.frames.shape[-1]), int(self.frames.shape[-2])),
                "actions": list(self.actions)}


def split_video_entry(entry: Any) -> tuple[Any, dict[str, Any]]:
    """(source, per-video options) from a sample's video entry: a path / frame list, or a qwen-vl-utils
    dict {"video": source, "fps": ..., "nframes": ..., "video_start": ..., "max_pixels": ...}."""
    if isinstance(entry, dict):
        if "video" not in entry:
            raise MediaError(f"video entry {entry!r}: a dict entry needs a 'video' key holding the source")
        options = {k: v for k, v in entry.items() if k in SAMPLING_KEYS + PIXEL_KEYS}
        return entry["video"], options
    return entry, {}


def describe_video_source(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (list, tuple)):
        return f"<list of {len(source)} frames>"
    return f"<{type(source).__name__}>"


def _resolve_path(source: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    return resolve_media_path(source, root, "video")


def frame_indices(options: dict[str, Any], total_frames: int, video_fps: float, name: str) -> tuple[list[int], int, list[str]]:
    """Indices of the frames to keep, the frame count of the chosen range, and any fallback taken.

    Uses qwen-vl-utils' `calculate_video_frame_range` and `smart_nframes`. Documented fallback: a video
    with fewer frames than requested (or than `FRAME_FACTOR`) keeps all its frames, an odd count padded by
    repeating the last one (as qwen-vl-utils does for frame lists), and logs a warning.
    """
    if total_frames <= 0:
        raise MediaError(f"video {name}: has no frames")
    try:
        start, end, count = calculate_video_frame_range(options, total_frames, video_fps)
    except ValueError as error:
        raise MediaError(f"video {name}: bad time range: {error}") from error
    sampling = {k: options[k] for k in ("fps", "nframes", "min_frames", "max_frames") if k in options}
    if "fps" in sampling and "nframes" in sampling:
        raise MediaError(f"video {name}: give either 'fps' or 'nframes', not both")
    try:
        nframes = smart_nframes(sampling, total_frames=count, video_fps=video_fps)
    except ValueError:
        requested = sampling.get("nframes", sampling.get("min_frames", FPS_MIN_FRAMES))
        message = f"video {name} has {count} frame(s), fewer than the {requested} requested; using all of them"
        log.warning(message)
        indices = list(range(start, start + count))
        if len(indices) % FRAME_FACTOR:
            indices.append(indices[-1])
        return indices, count, [message + (", last frame repeated to an even count" if count % FRAME_FACTOR else "")]
    indices = torch.linspace(start, end, nframes).round().long().tolist()
    return indices, count, []


def _read_decord(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, float, int, list[int], list[str]]:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    total, fps = len(reader), float(reader.get_avg_fps())
    indices, count, actions = frame_indices(options, total, fps, str(path))
    frames = reader.get_batch(indices).asnumpy()  # [T, H, W, 3]
    return frames, fps, count, indices, actions


def _read_pyav(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, float, int, list[int], list[str]]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else FPS
        # `stream.frames` is 0 for containers without an index (webm); decoding every frame is the only
        # count that is always right, and the synthetic and benchmark clips this reads are short.
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    indices, count, actions = frame_indices(options, len(decoded), fps, str(path))
    return np.stack([decoded[i] for i in indices]), fps, count, indices, actions


def _read_frame_folder(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, float, int, list[int], list[str]]:
    """A folder of frame images, in file-name order, at `options['folder_fps']` (default qwen's FPS, 2)."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
    if not files:
        raise MediaError(f"video {path}: the frame folder holds no {'/'.join(FRAME_EXTENSIONS)} files")
    fps = float(options.get("folder_fps", FPS))
    indices, count, actions = frame_indices(options, len(files), fps, str(path))
    from mmpost.modalities.image.processing import load_image

    frames = [np.asarray(load_image(files[i])) for i in indices]
    if len({f.shape for f in frames}) > 1:
        raise MediaError(f"video {path}: frames have different sizes {sorted({f.shape[:2] for f in frames})}")
    return np.stack(frames), fps, count, indices, actions


def load_video(source: Any, *, root: str | os.PathLike | None = None, options: dict[str, Any] | None = None) -> DecodedVideo:
    """Decode and sample a video: a file (decord, then PyAV), a folder of frames, or a list of frames.

    `options` take qwen-vl-utils' keys (`fps`, `nframes`, `min_frames`, `max_frames`, `video_start`,
    `video_end`). A list of frames (PIL images or image paths) is used whole, padded to an even count
    (as qwen-vl-utils does). A missing, empty, corrupt or truncated file, or one with no frames, raises
    `MediaError` naming it.
    """
    options = dict(options or {})
    if isinstance(source, (list, tuple)):
        from mmpost.modalities.image.processing import load_image

        if not source:
            raise MediaError("video <list of 0 frames>: has no frames")
        frames = [np.asarray(load_image(frame, root=root)) for frame in source]
        if len({f.shape for f in frames}) > 1:
            raise MediaError(f"video {describe_video_source(source)}: frames have different sizes")
        indices = list(range(len(frames)))
        actions = []
        if len(indices) % FRAME_FACTOR:
            indices.append(indices[-1])
            actions.append("last frame repeated to an even count")
        fps = float(options.get("fps", FPS))
        array = np.stack([frames[i] for i in indices])
        return DecodedVideo(torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(), describe_video_source(source),
                            fps, len(frames), indices, "frames", actions)
    if not isinstance(source, (str, os.PathLike)):
        raise MediaError(f"video {describe_video_source(source)}: unsupported source type {type(source).__name__}; "
                         "give a file path, a folder of frames or a list of frames")
    path = _resolve_path(source, root)
    name = str(path)
    if not path.exists():
        raise MediaError(f"video {name}: file not found")
    if path.is_dir():
        frames, fps, count, indices, actions = _read_frame_folder(path, options)
        backend = "frames"
    else:
        if path.stat().st_size == 0:
            raise MediaError(f"video {name}: empty file (0 bytes)")
        errors = []
        for backend, reader in (("decord", _read_decord), ("pyav", _read_pyav)):
            try:
                frames, fps, count, indices, actions = reader(path, options)
                break
            except MediaError:
                raise
            except Exception as error:  # noqa: BLE001 - decord and PyAV raise their own error types
                errors.append(f"{backend}: {type(error).__name__}: {str(error).strip()[:200]}")
        else:
            raise MediaError(f"video {name}: cannot decode (corrupt, truncated or not a video): {'; '.join(errors)}")
        if errors:
            log.warning("video %s: decord failed (%s); decoded with PyAV", name, errors[0])
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise MediaError(f"video {name}: decoded to no frames (shape {frames.shape})")
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()
    return DecodedVideo(tensor, name, fps, count, list(indices), backend, list(actions))


def frame_pixel_budget(nframes: int, *, min_pixels: int, max_pixels: int, total_pixels: int | None) -> int:
    """qwen-vl-utils `fetch_video`'s per-frame cap: a share of `total_pixels` per temporal patch, at least
    1.05 x `min_pixels`: max(min(max_pixels, total_pixels / nframes * 2), int(1.05 * min_pixels))."""
    if total_pixels is None:
        return max_pixels
    return int(max(min(max_pixels, total_pixels / max(nframes, 1) * FRAME_FACTOR), int(min_pixels * 1.05)))


def resized_frame_size(width: int, height: int, *, min_pixels: int, max_pixels: int, factor: int) -> tuple[int, int]:
    """(width, height) of a frame after `smart_resize` into [min_pixels, max_pixels] (multiples of `factor`)."""
    new_height, new_width = smart_resize(height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_width, new_height


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic, antialiased resize of [T, 3, H, W] frames to (width, height), as float (qwen-vl-utils)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    width, height = size
    if (frames.shape[-1], frames.shape[-2]) == (width, height):
        return frames.float()
    return resize(frames, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True).float()


def subsample(indices: Sequence[int], keep: int) -> list[int]:
    """`keep` positions spread evenly over range(len(indices)) (linspace, rounded), for dropping frames."""
    if keep >= len(indices):
        return list(range(len(indices)))
    return torch.linspace(0, len(indices) - 1, keep).round().long().tolist()


def tokens_of_video(nframes: int, width: int, height: int, factor: int) -> int:
    """LLM tokens of a video: (nframes / 2 temporal patches) x (w / 28) x (h / 28) merged patches."""
    return math.ceil(nframes / FRAME_FACTOR) * (width // factor) * (height // factor)


__all__ = [
    "DecodedVideo", "FPS", "FPS_MAX_FRAMES", "FPS_MIN_FRAMES", "FRAME_FACTOR", "frame_indices",
    "frame_pixel_budget", "load_video", "resize_frames", "resized_frame_size", "split_video_entry", "subsample",
    "tokens_of_video",
]


def frames_from_patches(pixel_values_videos: torch.Tensor, grid_thw: Sequence[int], *, patch_size: int = 14,
                        temporal_patch_size: int = 2, merge_size: int = 2, image_mean: Sequence[float] = (0.0, 0.0, 0.0),
                        image_std: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """Undo a Qwen2-VL video processor's patching: one video's `pixel_values_videos` [t*h*w, 3*tp*P*P] and its
    `video_grid_thw` (t, h, w) back to frames [t*tp, 3, h*P, w*P] (0-1 floats when given the processor's mean/std).

    The processor lays patches out as [t, h/m, w/m, m, m, C, tp, P, P] (`Qwen2VLVideoProcessor._preprocess`), so
    rows are merge-window major and each row holds `tp` consecutive frames of one P x P patch. For checks that
    what the model is fed still shows what the clip shows (tests/test_task_video.py)."""
    t, h, w = (int(v) for v in grid_thw)
    m, P, tp = merge_size, patch_size, temporal_patch_size
    if pixel_values_videos.shape != (t * h * w, 3 * tp * P * P):
        raise ValueError(f"frames_from_patches: pixel_values_videos {tuple(pixel_values_videos.shape)} does not match "
                         f"grid {t}x{h}x{w} with patch {P} and temporal patch {tp}")
    x = pixel_values_videos.float().reshape(t, h // m, w // m, m, m, 3, tp, P, P)
    x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8).reshape(t * tp, 3, h * P, w * P)
    mean = torch.tensor(image_mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(image_std, dtype=x.dtype).view(1, 3, 1, 1)
    return x * std + mean
