"""The GUI modality: a screenshot plus a target element box, in an explicit coordinate convention.

Built on the image modality (loading, pixel budget, prompt encoding); adds the box bookkeeping a grounding
reward needs: the gold box in original pixels, the size the model sees, and the box in the convention the
model answers in, all recorded in `sample["decoded"]["gui"]`.
"""
from __future__ import annotations

import copy
import logging
import os
from typing import Any

from mmpost.modalities.image.adapter import ImageModality, processor_factor, sample_id
from mmpost.modalities.image.processing import resized_size
from mmpost.registry import MODALITIES
from mmpost.types import DataError, MediaError, Message, PromptEncoding, Sample

from mmpost.rewards.geometry import Box, xywh_to_xyxy

from .processing import box_outside_image, check_system, clip_box, convert_box, resolution_sentence

log = logging.getLogger(__name__)

BOX_FORMATS = ("xyxy", "xywh")
OUT_OF_BOUNDS = ("error", "clip")


def _read_box(sample: Sample) -> list[float]:
    value = sample.get("box", sample.get("bbox"))
    if value is None:
        raise DataError(f"sample {sample_id(sample)}: a GUI sample needs a 'box' (or 'bbox') field")
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise DataError(f"sample {sample_id(sample)}: 'box' must be 4 numbers, got {value!r}") from None
    if len(numbers) != 4:
        raise DataError(f"sample {sample_id(sample)}: 'box' must be 4 numbers, got {value!r}")
    return numbers


@MODALITIES.register("gui")
class GuiModality:
    """Screenshots with a target element box.

    Options:
        coordinates: the convention the model answers in and rewards compare in: `model_pixels` (Qwen2.5-VL,
            default), `pixels`, `normalized` or `thousandths` (see `processing.py`).
        box_format / box_units: how the sample's `box` is written: `xyxy` (default) or `xywh`, in `pixels`
            (default), `normalized` or `thousandths` of the original screenshot.
        out_of_bounds: a box reaching outside the screenshot is an `error` (default, naming the sample) or is
            `clip`ped to the image (recorded as `decoded["gui"]["clipped"] = True` and logged).
        resolution_prompt: append "The image resolution is WxH pixels." (the model-input size) to the prompt's
            last text part: GuirlVG's image-resolution prompting.
        min_pixels / max_pixels: the image pixel budget (see the image modality).
    """

    name = "gui"

    def __init__(self, coordinates: str = "model_pixels", box_format: str = "xyxy", box_units: str = "pixels",
                 out_of_bounds: str = "error", resolution_prompt: bool = False,
                 min_pixels: int | None = None, max_pixels: int | None = None) -> None:
        self.coordinates = check_system(coordinates)
        if box_format not in BOX_FORMATS:
            raise ValueError(f"gui modality: box_format must be one of {BOX_FORMATS}, got {box_format!r}")
        if box_units not in ("pixels", "normalized", "thousandths"):
            raise ValueError(f"gui modality: box_units must be pixels | normalized | thousandths, got {box_units!r}")
        if out_of_bounds not in OUT_OF_BOUNDS:
            raise ValueError(f"gui modality: out_of_bounds must be one of {OUT_OF_BOUNDS}, got {out_of_bounds!r}")
        self.box_format, self.box_units, self.out_of_bounds = box_format, box_units, out_of_bounds
        self.resolution_prompt = bool(resolution_prompt)
        self.images = ImageModality(min_pixels=min_pixels, max_pixels=max_pixels)

    # -- decoding ---------------------------------------------------------------------------------
    def pixel_box(self, sample: Sample, image_size: tuple[int, int]) -> tuple[Box, bool]:
        """The sample's box as (x1, y1, x2, y2) original pixels, and whether it was clipped."""
        box = _read_box(sample)
        if self.box_format == "xywh":
            box = list(xywh_to_xyxy(box))
        if self.box_units != "pixels":
            box = list(convert_box(box, self.box_units, "pixels", original_size=image_size, model_size=image_size))
        problems = box_outside_image(box, image_size)
        if not problems:
            return (box[0], box[1], box[2], box[3]), False
        if self.out_of_bounds == "error":
            raise DataError(f"sample {sample_id(sample)}: box {box} does not fit the screenshot: {'; '.join(problems)} "
                            "(set data.modality_args.out_of_bounds=clip to clip such boxes)")
        clipped = clip_box(box, image_size)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise DataError(f"sample {sample_id(sample)}: box {box} lies wholly outside the {image_size[0]}x{image_size[1]} screenshot")
        log.warning("sample %s: box %s clipped to %s (%s)", sample_id(sample), box, clipped, "; ".join(problems))
        return clipped, True

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        """The image modality's `decoded` plus `decoded["gui"]` = {coordinates, image_size, model_size,
        box_pixels, box (in `coordinates`), clipped}. Exactly one screenshot per sample."""
        decoded_sample = self.images.decode(sample, root)
        decoded = decoded_sample["decoded"]
        if len(decoded["images"]) != 1:
            raise MediaError(f"sample {sample_id(sample)}: a GUI sample holds exactly one screenshot, got {len(decoded['images'])}")
        box_pixels, clipped = self.pixel_box(sample, decoded["image_sizes"][0])
        decoded["gui"] = {"coordinates": self.coordinates, "box_pixels": list(box_pixels), "clipped": clipped}
        self._refresh(decoded)
        return decoded_sample

    @staticmethod
    def _refresh(decoded: dict) -> None:
        """Recompute the sizes and the answer-convention box after the model size is known."""
        gui = decoded["gui"]
        original, model = tuple(decoded["image_sizes"][0]), tuple(decoded["model_image_sizes"][0])
        gui["image_size"], gui["model_size"] = list(original), list(model)
        gui["box"] = list(convert_box(gui["box_pixels"], "pixels", gui["coordinates"], original_size=original, model_size=model))

    # -- prompts ----------------------------------------------------------------------------------
    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """The image modality's encoding; with `resolution_prompt`, the model-input size is stated in the text."""
        if "gui" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample)["decoded"])
        decoded = sample["decoded"]
        if self.resolution_prompt:
            min_pixels, max_pixels = self.images.pixel_budget(processor)
            width, height = decoded["image_sizes"][0]
            model_size = resized_size(width, height, min_pixels=min_pixels, max_pixels=max_pixels,
                                      factor=processor_factor(processor))
            messages = with_appended_text(messages, resolution_sentence(model_size))
        encoding = self.images.encode_prompt(processor, messages, sample)
        self._refresh(decoded)  # encode_prompt fixed model_image_sizes to the processor's budget
        return encoding


def with_appended_text(messages: list[Message], text: str) -> list[Message]:
    """A copy of `messages` with `text` appended to the last text part of the last user turn."""
    messages = copy.deepcopy(messages)
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = content + text
            return messages
        for part in reversed(content or []):
            if part.get("type") == "text":
                part["text"] = part["text"] + text
                return messages
        content.append({"type": "text", "text": text.lstrip()})
        return messages
    raise DataError("the prompt has no user turn to state the image resolution in")
