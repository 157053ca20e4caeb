"""The video modality: videos (and images, in one prompt) in, Qwen2-VL / Qwen2.5-VL inputs out."""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from PIL import Image

from mmpost.modalities.image.adapter import ImageModality, count_image_placeholders, image_sources, processor_factor
from mmpost.registry import MODALITIES
from mmpost.modalities.common import count_placeholders, media_sources, sample_id  # noqa: F401
from mmpost.types import DataError, MediaError, Message, PromptEncoding, Sample

from mmpost.modalities.token_budget import (
    MediaItem, MediaPlan, fit_media_to_budget, processor_size_for, text_token_count,
)
from .processing import (
    FPS,
    FPS_MAX_FRAMES,
    FPS_MIN_FRAMES,
    DecodedVideo,
    frame_pixel_budget,
    load_video,
    resize_frames,
    split_video_entry,
    subsample,
)

# qwen-vl-utils' per-frame pixel defaults (VIDEO_MIN/MAX_TOKEN_NUM x 28 x 28), used before a processor is seen.
QWEN_VIDEO_MIN_PIXELS = 128 * 28 * 28
QWEN_VIDEO_MAX_PIXELS = 768 * 28 * 28




def video_entries(sample: Sample) -> list[Any]:
    """The sample's `videos` field as a list; one path or a qwen-vl-utils dict is accepted alone.

    A bare list of frames must be wrapped: `videos: [[frame, frame, ...]]` or `[{"video": [...]}]`.
    """
    entries = sample.get("videos")
    if entries is None:
        return []
    if isinstance(entries, (str, os.PathLike, dict)):
        return [entries]
    return list(entries)


def count_video_placeholders(messages: Sequence[Message]) -> int:
    """Number of video parts in the messages, counted the way the Qwen2.5-VL chat template counts them."""
    return count_placeholders(messages, "video", url_key=False)


def video_processor_budget(processor: Any) -> tuple[int, int]:
    """(min_pixels, max_pixels) per frame of a Qwen-VL processor's video processor (its `size`)."""
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None:
        raise ValueError(f"{type(processor).__name__} has no video_processor; the video modality needs a Qwen2-VL / "
                         "Qwen2.5-VL processor")
    size = video_processor.size
    read = (lambda key: getattr(size, key, None) or (size.get(key) if isinstance(size, dict) else None))
    return int(read("shortest_edge")), int(read("longest_edge"))


@MODALITIES.register("video")
class VideoModality:
    """Videos and images in one prompt -> Qwen-VL `pixel_values`/`image_grid_thw` and
    `pixel_values_videos` [sum of patches, 3*2*14*14] / `video_grid_thw` [num_videos, 3] /
    `second_per_grid_ts` [num_videos] (Qwen2.5-VL), all concatenating along dim 0 across prompts.

    Options (qwen-vl-utils' names): `fps` (2.0) or `nframes`, `min_frames` (4), `max_frames` (768),
    `video_min_pixels` / `video_max_pixels` per frame (None = the processor's video `size`),
    `video_total_pixels` (per-video cap spread over its frames, None = off), `min_pixels` / `max_pixels`
    for images (None = the processor's), and `max_prompt_tokens`: when a prompt's text and media exceed
    it, images and frames shrink and frames are dropped until it fits (`token_budget.fit_media_to_budget`),
    logged and recorded in `sample["decoded"]["budget_actions"]`. A sample's video entry may override the
    sampling options as a qwen-vl-utils dict {"video": ..., "fps": ..., "video_start": ...}.
    """

    name = "video"

    def __init__(self, fps: float | None = FPS, nframes: int | None = None, min_frames: int = FPS_MIN_FRAMES,
                 max_frames: int = FPS_MAX_FRAMES, video_min_pixels: int | None = None, video_max_pixels: int | None = None,
                 video_total_pixels: int | None = None, min_pixels: int | None = None, max_pixels: int | None = None,
                 max_prompt_tokens: int | None = None) -> None:
        if nframes is not None and nframes < 2:
            raise ValueError(f"video modality: nframes must be at least 2 (one temporal patch), got {nframes}")
        if max_prompt_tokens is not None and max_prompt_tokens <= 0:
            raise ValueError(f"video modality: max_prompt_tokens must be positive, got {max_prompt_tokens}")
        if video_min_pixels and video_max_pixels and video_min_pixels > video_max_pixels:
            raise ValueError(f"video modality: video_min_pixels ({video_min_pixels}) exceeds video_max_pixels ({video_max_pixels})")
        self.sampling = {"nframes": nframes} if nframes is not None else {"fps": fps, "min_frames": min_frames, "max_frames": max_frames}
        self.video_min_pixels = video_min_pixels
        self.video_max_pixels = video_max_pixels
        self.video_total_pixels = video_total_pixels
        self.max_prompt_tokens = max_prompt_tokens
        self.images = ImageModality(min_pixels=min_pixels, max_pixels=max_pixels)

    # -- decoding -----------------------------------------------------------------------------------
    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        """A shallow copy with `decoded` = the image modality's fields (`images`, `image_sizes`, ...) plus
        {"videos": [uint8 [T, 3, H, W]], "video_info": [{source, video_fps, total_frames, frame_indices,
        sample_fps, backend, size, actions}], "video_options": [per-video pixel options]}."""
        decoded_sample = self.images.decode(sample, root) if image_sources(sample) else {**sample, "decoded": {
            **(sample.get("decoded") or {}), "images": [], "image_sizes": [], "model_image_sizes": []}}
        videos: list[DecodedVideo] = []
        pixel_options = []
        for entry in video_entries(sample):
            try:
                source, options = split_video_entry(entry)
                videos.append(load_video(source, root=root, options=self._sampling_for(options)))
            except MediaError as error:
                raise MediaError(f"sample {sample_id(sample)}: {error}") from error
            pixel_options.append({k: v for k, v in options.items() if k in ("min_pixels", "max_pixels", "total_pixels")})
        decoded = decoded_sample["decoded"]
        decoded.update(videos=[v.frames for v in videos], video_info=[v.info() for v in videos],
                       video_options=pixel_options)
        return {**decoded_sample, "decoded": decoded}

    def _sampling_for(self, options: dict[str, Any]) -> dict[str, Any]:
        """The modality's sampling options overridden by a video entry's; an entry's `nframes` replaces
        the modality's `fps` mode and an entry's `fps` its `nframes` (qwen-vl-utils takes one or the other)."""
        base = dict(self.sampling)
        if "nframes" in options:
            base = {}
        elif "fps" in options:
            base.pop("nframes", None)
        return {**base, **options}

    # -- encoding -----------------------------------------------------------------------------------
    def _video_items(self, sample: Sample, processor: Any) -> list[MediaItem]:
        default_min, default_max = video_processor_budget(processor)
        items = []
        decoded = sample["decoded"]
        for index, (frames, options) in enumerate(zip(decoded["videos"], decoded["video_options"])):
            min_pixels = options.get("min_pixels", self.video_min_pixels or default_min)
            max_pixels = options.get("max_pixels", self.video_max_pixels or default_max)
            total = options.get("total_pixels", self.video_total_pixels)
            max_pixels = frame_pixel_budget(frames.shape[0], min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total)
            items.append(MediaItem("video", index, int(frames.shape[-1]), int(frames.shape[-2]), int(frames.shape[0]),
                                   min_pixels, max(max_pixels, min_pixels)))
        return items

    def _image_items(self, sample: Sample, processor: Any) -> list[MediaItem]:
        min_pixels, max_pixels = self.images.pixel_budget(processor)
        return [MediaItem("image", i, image.width, image.height, 1, min_pixels, max_pixels)
                for i, image in enumerate(sample["decoded"]["images"])]

    def _check_placeholders(self, sample: Sample, messages: Sequence[Message]) -> None:
        decoded = sample["decoded"]
        for kind, placeholders, count, field in (
            ("image", count_image_placeholders(messages), len(decoded["images"]), "images"),
            ("video", count_video_placeholders(messages), len(decoded["videos"]), "videos"),
        ):
            if placeholders == count:
                continue
            if placeholders and field not in sample:
                raise MediaError(f"sample {sample_id(sample)}: the prompt has {placeholders} {kind} placeholder(s) but "
                                 f"the sample has no `{field}` field")
            raise DataError(f"sample {sample_id(sample)}: the prompt has {placeholders} {kind} placeholder(s) but the "
                            f"sample has {count} {kind}(s); they must match one to one, in order")

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """Template the messages, fit the media to the pixel and token budgets, run the processor.

        `media`: `pixel_values` + `image_grid_thw` when the prompt has images, `pixel_values_videos` +
        `video_grid_thw` (+ `second_per_grid_ts` from Qwen2.5-VL's processor) when it has videos;
        `token_fields["mm_token_type_ids"]` (0 text, 1 image, 2 video) for M-RoPE.
        """
        if "decoded" not in sample or "videos" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample, sample.get("_root"))["decoded"])
        self._check_placeholders(sample, messages)
        decoded = sample["decoded"]
        factor = processor_factor(processor)
        image_items, video_items = self._image_items(sample, processor), self._video_items(sample, processor)
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        text_tokens = text_token_count(processor, text, ("<|image_pad|>", "<|video_pad|>"))
        plans, actions = fit_media_to_budget(image_items + video_items, text_tokens=text_tokens,
                                             max_prompt_tokens=self.max_prompt_tokens, factor=factor,
                                             name=f"sample {sample_id(sample)}")
        decoded["budget_actions"] = actions
        image_plans, video_plans = plans[: len(image_items)], plans[len(image_items):]
        decoded["model_image_sizes"] = [(p.width, p.height) for p in image_plans]
        kwargs: dict[str, Any] = {}
        if image_plans:
            kwargs["images"] = [image.resize((p.width, p.height), resample=Image.Resampling.BICUBIC) if image.size != (p.width, p.height) else image
                                for image, p in zip(decoded["images"], image_plans)]
            kwargs["images_kwargs"] = {"size": processor_size_for(image_plans, self.images.pixel_budget(processor))}
        if video_plans:
            kwargs["videos"], metadata = self._fitted_videos(decoded, video_plans)
            # What the processor saw, for a rollout engine that runs its own processor (vLLM).
            decoded["model_videos"] = kwargs["videos"]
            decoded["model_video_metadata"] = [{"fps": m.fps, "total_num_frames": m.total_num_frames,
                                                "frames_indices": list(m.frames_indices)} for m in metadata]
            kwargs["videos_kwargs"] = {"size": processor_size_for(video_plans, video_processor_budget(processor)),
                                       "video_metadata": metadata, "cap_pixels_per_frame": False,
                                       "do_sample_frames": False}
        encoded = processor(text=[text], return_tensors="pt", **kwargs)
        media: dict[str, torch.Tensor] = {}
        if image_plans:
            media.update(pixel_values=encoded["pixel_values"], image_grid_thw=encoded["image_grid_thw"].to(torch.long))
        if video_plans:
            media.update(pixel_values_videos=encoded["pixel_values_videos"],
                         video_grid_thw=encoded["video_grid_thw"].to(torch.long))
            if "second_per_grid_ts" in encoded:
                media["second_per_grid_ts"] = torch.as_tensor(encoded["second_per_grid_ts"], dtype=torch.float32).reshape(-1)
        token_fields = {k: encoded[k][0].to(torch.long) for k in ("mm_token_type_ids",) if k in encoded}
        return PromptEncoding(input_ids=encoded["input_ids"][0].to(torch.long), media=media, text=text,
                              token_fields=token_fields)

    def _fitted_videos(self, decoded: dict, plans: Sequence[MediaPlan]):
        """Frames resized (and thinned) to the plans, and transformers `VideoMetadata` giving each one's fps."""
        from transformers.video_utils import VideoMetadata

        videos, metadata = [], []
        for frames, info, plan in zip(decoded["videos"], decoded["video_info"], plans):
            keep = subsample(range(frames.shape[0]), plan.nframes)
            indices = [info["frame_indices"][k] for k in keep]
            videos.append(resize_frames(frames[keep], (plan.width, plan.height)))
            # sampled fps = len(indices) / total_frames * fps: what Qwen2.5-VL's second_per_grid_ts is made of.
            metadata.append(VideoMetadata(total_num_frames=info["total_frames"], fps=info["video_fps"],
                                          frames_indices=indices))
        return videos, metadata
