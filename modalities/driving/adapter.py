"""The driving modality: named camera views in a fixed order, optional ego state, waypoint answers.

Built on the image modality: each view is one image of the prompt, in camera order, so the Qwen-VL encoding
(pixel budget, placeholders, `mm_token_type_ids`) is the image modality's own.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from PIL import Image

from mmpost.modalities.image.adapter import ImageModality, count_image_placeholders, sample_id
from mmpost.modalities.image.processing import load_image
from mmpost.registry import MODALITIES
from mmpost.types import DataError, MediaError, Message, PromptEncoding, Sample

from .processing import NUSCENES_CAMERAS

log = logging.getLogger(__name__)

MISSING_CAMERA_POLICIES = ("error", "black")
DEFAULT_FRAME_SIZE = (1600, 900)  # a nuScenes camera frame, used for a black frame when no view loaded


def camera_content(camera_names: Sequence[str], text: str) -> list[dict]:
    """Chat content: "CAM_FRONT:" then its image, for each view in order, then `text`."""
    content: list[dict] = []
    for name in camera_names:
        content.append({"type": "text", "text": f"{name}: "})
        content.append({"type": "image"})
    content.append({"type": "text", "text": text})
    return content


@MODALITIES.register("driving")
class DrivingModality:
    """Samples carry `cameras` = {name: image source} (paths relative to the dataset folder, bytes, PIL images)
    and optionally `ego_state` = {"speed": ..., ...} and `camera_order` (a list of names).

    Options:
        cameras: the views every sample must have, in prompt order. None = the sample's `camera_order`, else
            DriveLM's six nuScenes views (`NUSCENES_CAMERAS`: FRONT, FRONT_LEFT, FRONT_RIGHT, BACK, BACK_LEFT,
            BACK_RIGHT).
        missing_camera: `error` (default): a sample without one of the views raises a MediaError naming the
            sample and the camera; `black`: a black frame of the other views' size stands in, the view is listed
            in `decoded["missing_cameras"]` and a warning is logged.
        min_pixels / max_pixels: each view's pixel budget (see the image modality).
    """

    name = "driving"

    def __init__(self, cameras: Sequence[str] | None = None, missing_camera: str = "error",
                 min_pixels: int | None = None, max_pixels: int | None = None) -> None:
        if missing_camera not in MISSING_CAMERA_POLICIES:
            raise ValueError(f"driving modality: missing_camera must be one of {MISSING_CAMERA_POLICIES}, got {missing_camera!r}")
        if cameras is not None and (not cameras or len(set(cameras)) != len(cameras)):
            raise ValueError(f"driving modality: cameras must be a non-empty list of distinct names, got {cameras!r}")
        self.cameras = tuple(cameras) if cameras is not None else None
        self.missing_camera = missing_camera
        self.images = ImageModality(min_pixels=min_pixels, max_pixels=max_pixels)

    def camera_order(self, sample: Sample) -> tuple[str, ...]:
        if self.cameras is not None:
            return self.cameras
        if sample.get("camera_order"):
            return tuple(sample["camera_order"])
        return NUSCENES_CAMERAS

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        """The image modality's `decoded` (images in camera order) plus `camera_names`, `missing_cameras` and
        `ego_state`."""
        sources = sample.get("cameras")
        if not isinstance(sources, dict):
            raise DataError(f"sample {sample_id(sample)}: a driving sample needs `cameras` = {{name: image}}, got {type(sources).__name__}")
        order = self.camera_order(sample)
        loaded: dict[str, Image.Image] = {}
        missing: list[str] = []
        for name in order:
            if sources.get(name) is None:
                if self.missing_camera == "error":
                    raise MediaError(f"sample {sample_id(sample)}: camera {name} is missing (the sample has "
                                     f"{sorted(sources)}; set data.modality_args.missing_camera=black to use a black frame)")
                missing.append(name)
                continue
            try:
                loaded[name] = load_image(sources[name], root=root)
            except MediaError as error:
                if self.missing_camera == "error":
                    raise MediaError(f"sample {sample_id(sample)}: camera {name}: {error}") from error
                log.warning("sample %s: camera %s unreadable (%s); using a black frame", sample_id(sample), name, error)
                missing.append(name)
        if missing:
            size = next(iter(loaded.values())).size if loaded else DEFAULT_FRAME_SIZE
            log.warning("sample %s: camera(s) %s missing; black %dx%d frame(s) used", sample_id(sample), missing, *size)
            for name in missing:
                loaded[name] = Image.new("RGB", size, (0, 0, 0))
        view = {**sample, "images": [loaded[name] for name in order]}
        decoded = self.images.decode(view)["decoded"]
        decoded.update(camera_names=list(order), missing_cameras=missing, ego_state=sample.get("ego_state"))
        return {**sample, "decoded": decoded}

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """The image modality's encoding of the views in camera order; placeholders must match the views."""
        if "camera_names" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample)["decoded"])
        names = sample["decoded"]["camera_names"]
        placeholders = count_image_placeholders(messages)
        if placeholders != len(names):
            raise DataError(f"sample {sample_id(sample)}: the prompt has {placeholders} image placeholder(s) but the "
                            f"sample has {len(names)} camera view(s) {names}; build the content with `camera_content`")
        return self.images.encode_prompt(processor, messages, sample)
