"""The "pointcloud" modality: N x 3 float arrays in `.npy` files, shown to a VLM as one rendered image each.

A cloud is drawn as three orthographic views in a 2 x 2 grid (top-left x-y, top-right x-z, bottom-left z-y,
bottom-right empty), all on one scale (the cloud's largest absolute coordinate), so an elongated cloud looks
elongated. The image then goes through the built-in image modality, so any Qwen-VL-style model reads it.
Samples hold `pointclouds`: a list of `.npy` paths (relative to the data file's folder) or arrays.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmpost.modalities.image.adapter import ImageModality
from mmpost.registry import MODALITIES
from mmpost.types import MediaError, Message, PromptEncoding, Sample

BACKGROUND = (250, 250, 250)
INK = (30, 30, 30)
GRID = (200, 200, 200)
# (horizontal axis, vertical axis) of each view, in grid order; None leaves the cell empty.
VIEWS: tuple[tuple[int, int] | None, ...] = ((0, 1), (0, 2), (2, 1), None)


def load_cloud(source: Any, root: str | os.PathLike | None = None) -> np.ndarray:
    """A finite float32 array [N, 3] from a `.npy` path (relative to `root`) or an array; MediaError names the file."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if root is not None and not path.is_absolute():
            path = Path(root).parent / path if Path(root).is_file() else Path(root) / path
        try:
            cloud = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise MediaError(f"point cloud file not found: {path}") from None
        except (ValueError, OSError) as error:
            raise MediaError(f"point cloud file {path} is not a readable .npy array: {error}") from None
        where = str(path)
    else:
        cloud, where = np.asarray(source), "in-memory array"
    if cloud.ndim != 2 or cloud.shape[1] != 3 or cloud.shape[0] == 0:
        raise MediaError(f"point cloud {where} must have shape [N, 3] with N > 0, got {tuple(cloud.shape)}")
    if not np.issubdtype(cloud.dtype, np.number) or not np.isfinite(cloud).all():
        raise MediaError(f"point cloud {where} must hold finite numbers")
    return cloud.astype(np.float32)


def render_cloud(cloud: np.ndarray, size: int = 112, dot: int = 1) -> Image.Image:
    """Three orthographic views of `cloud` [N, 3] in a `size` x `size` RGB image, on one shared scale.

    Coordinates are centred on the cloud's mean and divided by its largest absolute centred coordinate,
    so the cloud spans [-1, 1] along its longest extent in every view.
    """
    centred = cloud - cloud.mean(axis=0)
    scale = float(np.abs(centred).max()) or 1.0
    unit = centred / scale  # [N, 3] in [-1, 1]
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cell = size // 2
    for index, view in enumerate(VIEWS):
        left, top = (index % 2) * cell, (index // 2) * cell
        draw.rectangle((left, top, left + cell - 1, top + cell - 1), outline=GRID)
        if view is None:
            continue
        horizontal, vertical = view
        half = (cell - 4) / 2
        xs = left + cell / 2 + unit[:, horizontal] * half
        ys = top + cell / 2 - unit[:, vertical] * half  # image rows grow downwards
        for x, y in zip(xs, ys):
            draw.rectangle((x - dot, y - dot, x + dot, y + dot), fill=INK)
    return image


@MODALITIES.register("pointcloud")
class PointCloudModality:
    """Point clouds -> rendered images -> the image modality's Qwen-VL inputs.

    `decode` adds `decoded["pointclouds"]` ([N, 3] arrays, for rewards) and the image modality's fields
    (`images` = the renders). Options: `render_size` (pixels per render) and the image modality's
    `min_pixels` / `max_pixels`.
    """

    name = "pointcloud"

    def __init__(self, render_size: int = 112, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
        self.render_size = render_size
        self.images = ImageModality(min_pixels=min_pixels, max_pixels=max_pixels)

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        sources = sample.get("pointclouds")
        if not sources:
            raise MediaError(f"sample {sample.get('id', '?')!r}: a pointcloud sample needs 'pointclouds' (.npy paths)")
        sources = sources if isinstance(sources, (list, tuple)) else [sources]
        try:
            clouds = [load_cloud(source, root) for source in sources]
        except MediaError as error:
            raise MediaError(f"sample {sample.get('id', '?')!r}: {error}") from None
        renders = [render_cloud(cloud, self.render_size) for cloud in clouds]
        decoded = self.images.decode({**sample, "images": renders})["decoded"]
        decoded["pointclouds"] = clouds
        return {**sample, "decoded": decoded}

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """One `{"type": "image"}` part per cloud in the messages, as for images."""
        if "pointclouds" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample)["decoded"])
        return self.images.encode_prompt(processor, messages, sample)
