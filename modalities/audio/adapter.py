"""The audio modality: loads a sample's audio clips and turns chat messages + audio into Qwen2-Audio inputs."""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np
import torch

from mmpost.registry import MODALITIES
from mmpost.modalities.common import count_placeholders, media_sources, sample_id  # noqa: F401
from mmpost.types import DataError, MediaError, Message, PromptEncoding, Sample

from .processing import (
    MIN_AUDIO_SECONDS,
    QWEN2_AUDIO_SAMPLING_RATE,
    QWEN2_AUDIO_WINDOW_SECONDS,
    load_audio,
    resample,
)

log = logging.getLogger(__name__)




def audio_sources(sample: Sample) -> list[Any]:
    """The sample's `audios` field as a list (a single source is accepted); [] when absent or None."""
    return media_sources(sample, "audios")


def count_audio_placeholders(messages: Sequence[Message]) -> int:
    """Number of audio parts in the messages, counted the way Qwen2-Audio's chat template counts them."""
    return count_placeholders(messages, "audio")


def feature_window(processor: Any) -> tuple[int, float]:
    """(sampling rate, window seconds) of a processor's feature extractor (16000 and 30.0 for Qwen2-Audio)."""
    extractor = getattr(processor, "feature_extractor", None)
    if extractor is None:
        raise ValueError(f"{type(processor).__name__} has no feature_extractor; the audio modality needs an audio "
                         "processor such as Qwen2AudioProcessor")
    rate = int(extractor.sampling_rate)
    return rate, float(extractor.n_samples) / rate


@MODALITIES.register("audio")
class AudioModality:
    """Audio in, Qwen2-Audio `input_features` [num_audios, mel_bins, frames] and `feature_attention_mask`
    [num_audios, frames] out (frames = the extractor's window, 3000 for 30 s; rows concatenate along dim 0).

    Options: `sampling_rate` and `max_seconds` used by `decode` before a processor is seen (None = Qwen2-Audio's
    16 kHz and 30 s; at encode time the processor's feature extractor decides), `min_seconds` (shorter clips
    are padded with silence).
    """

    name = "audio"

    def __init__(self, sampling_rate: int | None = None, max_seconds: float | None = None,
                 min_seconds: float = MIN_AUDIO_SECONDS) -> None:
        for option, value in (("sampling_rate", sampling_rate), ("max_seconds", max_seconds)):
            if value is not None and value <= 0:
                raise ValueError(f"audio modality: {option} must be positive, got {value}")
        if min_seconds < 0:
            raise ValueError(f"audio modality: min_seconds must not be negative, got {min_seconds}")
        self.sampling_rate = sampling_rate
        self.max_seconds = max_seconds
        self.min_seconds = min_seconds

    def decode(self, sample: Sample, root: str | os.PathLike | None = None) -> Sample:
        """A shallow copy of `sample` with `decoded` = {"audios": [float32 [n]], "audio_sampling_rate": int,
        "audio_info": [{source, original_sampling_rate, channels, original_seconds, seconds, actions}]}.

        `sample["audios"]` is a list of sources or one source (see `load_audio`). Bad audio raises
        `MediaError` naming the sample and the file.
        """
        rate = self.sampling_rate or QWEN2_AUDIO_SAMPLING_RATE
        window = self.max_seconds or QWEN2_AUDIO_WINDOW_SECONDS
        loaded = []
        for source in audio_sources(sample):
            try:
                loaded.append(load_audio(source, root=root, sampling_rate=rate, max_seconds=window,
                                         min_seconds=self.min_seconds))
            except MediaError as error:
                raise MediaError(f"sample {sample_id(sample)}: {error}") from error
        decoded = dict(sample.get("decoded") or {})
        decoded.update(audios=[a.waveform for a in loaded], audio_sampling_rate=rate,
                       audio_info=[a.info() for a in loaded])
        return {**sample, "decoded": decoded}

    def _fit_to_processor(self, sample: Sample, processor: Any) -> list[np.ndarray]:
        """The decoded clips at the processor's sampling rate and within its window (logged when changed)."""
        rate, window = feature_window(processor)
        decoded = sample["decoded"]
        audios = list(decoded["audios"])
        if decoded.get("audio_sampling_rate") != rate:
            log.info("sample %s: resampling decoded audio %s Hz -> %d Hz for the processor", sample_id(sample),
                     decoded.get("audio_sampling_rate"), rate)
            audios = [resample(a, int(decoded["audio_sampling_rate"]), rate) for a in audios]
            decoded.update(audios=audios, audio_sampling_rate=rate)
        limit = int(round(window * rate))
        for index, audio in enumerate(audios):
            if audio.shape[0] > limit:
                log.warning("sample %s: audio %d is %.2f s, longer than the processor's %g s window; truncated",
                            sample_id(sample), index, audio.shape[0] / rate, window)
                audios[index] = audio[:limit]
                info = decoded.get("audio_info") or []
                if index < len(info):
                    info[index]["actions"].append(f"truncated to the processor's {window:g} s window")
        decoded["audios"] = audios
        return audios

    def encode_prompt(self, processor: Any, messages: list[Message], sample: Sample) -> PromptEncoding:
        """Apply the chat template with a generation prompt and extract log-mel features.

        Returns `input_ids` [P] (each `<|AUDIO|>` repeated once per audio embedding: 25 per second) and
        `media` = {"input_features": [num_audios, mel_bins, frames], "feature_attention_mask":
        [num_audios, frames]} (empty for a text-only prompt). Clips come from `sample["decoded"]` (decoded
        here when absent).
        """
        if "decoded" not in sample or "audios" not in (sample.get("decoded") or {}):
            sample.update(decoded=self.decode(sample, sample.get("_root"))["decoded"])
        placeholders = count_audio_placeholders(messages)
        count = len(sample["decoded"]["audios"])
        if placeholders != count:
            if placeholders and "audios" not in sample:
                raise MediaError(f"sample {sample_id(sample)}: the prompt has {placeholders} audio placeholder(s) "
                                 "but the sample has no `audios` field")
            raise DataError(f"sample {sample_id(sample)}: the prompt has {placeholders} audio placeholder(s) but the "
                            f"sample has {count} audio clip(s); they must match one to one, in order")
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if count:
            audios = self._fit_to_processor(sample, processor)
            rate, _ = feature_window(processor)
            encoded = processor(text=[text], audio=audios, sampling_rate=rate, return_tensors="pt")
            media = {
                "input_features": encoded["input_features"],
                "feature_attention_mask": encoded["feature_attention_mask"].to(torch.long),
            }
        else:
            encoded = processor(text=[text], return_tensors="pt")
            media = {}
        return PromptEncoding(input_ids=encoded["input_ids"][0].to(torch.long), media=media, text=text)
