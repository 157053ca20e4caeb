"""The image modality: loads a sample's images and turns chat messages + images into Qwen-VL inputs."""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from PIL import Image

from mmpost.registry import MODALITIES
from mmpost.modalities.common import count_placeholders, media_sources, sample_id  # noqa: F401
from mmpost.modalities.token_budget import MediaItem, fit_media_to_budget, processor_size_for, text_token_count
from mmpost.types import DataError, MediaError, Message, PromptEncoding, Sample

from .processing import (
    QWEN_VL_FACTOR,
    QWEN_VL_MAX_PIXELS,
    QWEN_VL_MIN_PIXELS,
    describe_source,
    fit_pixels,
    load_image,
    resized_size,
)




def image_sources(sample: Sample) -> list[Any]:
    """The sample's `images` field as a list (a single source is accepted); [] when absent or None."""
    return media_sources(sample, "images")


def count_image_placeholders(messages: Sequence[Message]) -> int:
    """Number of image parts in the messages, counted the way the Qwen2.5-VL chat template counts them."""
    return count_placeholders(messages, "image")


def processor_pixel_budget(processor: Any) -> tuple[int, int]:
    """(min_pixels, max_pixels) of a Qwen-VL processor's image processor (its `size` shortest/longest edge)."""
    image_processor = getattr(processor, "image_processor", processor)
    size = getattr(image_processor, "size", None)

    def read(key: str) -> int | None:
        if size is None:
            return None
        value = getattr(size, key, None)
        if value is None and isinstance(size, dict):
            value = size.get(key)
        return value

    min_pixels = read("shortest_edge") or getattr(image_processor, "min_pixels", None)
    max_pixels = read("longest_edge") or getattr(image_processor, "max_pixels", None)
    if not min_pixels or not max_pixels:
        raise ValueError(
            f"cannot read a pixel budget from {type(image_processor).__name__} (size={size!r}); "
            "set min_pixels and max_pixels on the image modality"
        )
    return int(min_pixels), int(max_pixels)


def processor_factor(processor: Any) -> int:
    """Pixels per merged visual token along a side: patch_size x merge_size (28 for Qwen2/2.5-VL)."""
    image_processor = getattr(processor, "image_processor", processor)
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", None)
    return int(patch * merge) if patch and merge else QWEN_VL_FACTOR


@MODALITIES.register("image")
class ImageModality:
    """Images in, Qwen-VL `pixel_values` [sum of patches, C*T*14*14] and `image_grid_thw` [num_images, 3] out.

    Options: `min_pixels` / `max_pixels`, the pixel budget each image is resized into (None = the
    processor's own budget at encode time; before a processor is seen, transformers' Qwen2-VL defaults);
    `max_prompt_tokens`: when text + images exceed it, images shrink until the prompt fits
    (`mmpost.modalities.token_budget.fit_media_to_budget`), logged and recorded in
    `sample["decoded"]["budget_actions"]`.
    """

    name = "image"

    def __init__(self, min_pixels: int | None = None, max_pixels: int | None = None,
                 max_prompt_tokens: int | None = None) -> None:
        if max_prompt_tokens is not None and max_prompt_tokens <= 0:
            raise ValueError(f"image modality: max_prompt_tokens must be positive, got {max_prompt_tokens}")
        self.max_prompt_tokens = max_prompt_tokens
        if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
            raise ValueError(f"image modality: min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
        for option, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
            if value is not None and value <= 0:
                raise ValueError(f"image modality: {option} must be positive, got {value}")
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels

    def pixel_budget(self, processor: Any = None) -> tuple[int, int]:
        """(min_pixels, max_pixels): this modality's options, else the processor's, else Qwen2-VL defaults."""
        if processor is not None:
            default_min, default_max = processor_pixel_budget(processor)
        else:
            default_min, default_max = QWEN_VL_MIN_PIXELS, QWEN_VL_MAX_PIXELS
        min_pixels = self.min_pixels if self.min_pixels is not None else default_min
        max_pixels = self.max_pixels if self.max_pixels is not None else default_max
        if min_pixels > max_pixels:
            raise ValueError(f"image modality: pixel budget min {min_pixels} exceeds max {max_pixels}")
        return min_pixels, max_pixels

    def _model_sizes(self, sample: Sample, sizes: Sequence[tuple[int, int]], budget: tuple[int, int], factor: int):
        model_sizes = []
        for index, (width, height) in enumerate(sizes):
            try:
                model_sizes.append(
                    resized_size(width, height, min_pixels=budget[0], max_pixels=budget[1], factor=factor)
                )
            except (ValueError, AssertionError) as error:  # e.g. aspect ratio beyond Qwen-VL's limit of 200
                source = image_sources(sample)[index] if index < len(image_sources(sample)) else index
                raise MediaError(
                    f"sample {sample_id(sample)}: image {describe_source(source)} ({width}x{height}) "
                    f"cannot be fitted to the pixel budget: {error}"
                ) from error
        return model_sizes

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        """A shallow copy of `sample` with `decoded` = {"images": [PIL RGB], "image_sizes": [(w, h)],
        "model_image_sizes": [(w, h) under the pixel budget]}.

        `sample["images"]` is a list of sources or one source (path relative to `root`, bytes, data URI or
        PIL image). A sample without `images` decodes to empty lists; `encode_prompt` then refuses a
        prompt with image placeholders.
        """
        images: list[Image.Image] = []
        for source in image_sources(sample):
            try:
                images.append(load_image(source, root=root))
            except MediaError as error:
                raise MediaError(f"sample {sample_id(sample)}: {error}") from error
        sizes = [image.size for image in images]
        decoded = dict(sample.get("decoded") or {})
        decoded.update(
            images=images,
            image_sizes=sizes,
            model_image_sizes=self._model_sizes(sample, sizes, self.pixel_budget(), QWEN_VL_FACTOR),
        )
        return {**sample, "decoded": decoded}

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """Apply the chat template with a generation prompt and process the budget-fitted images.

        Returns `input_ids` [P] (each `<|image_pad|>` repeated grid_t*grid_h*grid_w/merge**2 times) and
        `media` = {"pixel_values": [sum_i t_i*h_i*w_i, 3*2*14*14], "image_grid_thw": [num_images, 3]}
        (empty for a text-only prompt). Images come from `sample["decoded"]` (decoded here when absent);
        `decoded["model_image_sizes"]` is updated to the sizes the processor's budget actually gives.
        """
        if "decoded" not in sample or "images" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample)["decoded"])
        images = sample["decoded"]["images"]
        placeholders = count_image_placeholders(messages)
        if placeholders != len(images):
            if placeholders and "images" not in sample:
                raise MediaError(
                    f"sample {sample_id(sample)}: the prompt has {placeholders} image placeholder(s) "
                    "but the sample has no `images` field"
                )
            raise DataError(
                f"sample {sample_id(sample)}: the prompt has {placeholders} image placeholder(s) "
                f"but the sample has {len(images)} image(s); they must match one to one, in order"
            )

        budget = self.pixel_budget(processor)
        factor = processor_factor(processor)
        model_sizes = self._model_sizes(sample, [image.size for image in images], budget, factor)
        sample["decoded"]["model_image_sizes"] = model_sizes
        fitted = [fit_pixels(image, min_pixels=budget[0], max_pixels=budget[1], factor=factor) for image in images]

        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # The same budget goes to the processor so it does not resize the already-fitted images again.
        size = {"shortest_edge": budget[0], "longest_edge": budget[1]}
        if fitted and self.max_prompt_tokens is not None:
            fitted, size = self._fit_token_budget(processor, text, sample, fitted, budget, factor)
        if fitted:
            encoded = processor(text=[text], images=fitted, images_kwargs={"size": size}, return_tensors="pt")
            media = {
                "pixel_values": encoded["pixel_values"],
                "image_grid_thw": encoded["image_grid_thw"].to(torch.long),
            }
        else:
            encoded = processor(text=[text], return_tensors="pt")
            media = {}
        # transformers 5 computes Qwen-VL's M-RoPE positions from mm_token_type_ids; without it the
        # model silently falls back to text positions.
        token_fields = {k: encoded[k][0].to(torch.long) for k in ("mm_token_type_ids",) if k in encoded}
        return PromptEncoding(input_ids=encoded["input_ids"][0].to(torch.long), media=media, text=text,
                              token_fields=token_fields)

    def _fit_token_budget(self, processor, text, sample, fitted, budget, factor):
        """Shrink the images until text + image tokens <= max_prompt_tokens; returns images and processor size."""
        items = [MediaItem("image", i, image.width, image.height, 1, budget[0], budget[1]) for i, image in enumerate(fitted)]
        plans, actions = fit_media_to_budget(items, text_tokens=text_token_count(processor, text, ("<|image_pad|>",)),
                                             max_prompt_tokens=self.max_prompt_tokens, factor=factor,
                                             name=f"sample {sample_id(sample)}")
        sample["decoded"]["budget_actions"] = actions
        sample["decoded"]["model_image_sizes"] = [(p.width, p.height) for p in plans]
        resized = [image if image.size == (p.width, p.height) else image.resize((p.width, p.height), Image.Resampling.BICUBIC)
                   for image, p in zip(fitted, plans)]
        return resized, processor_size_for(plans, budget)
