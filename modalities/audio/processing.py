"""Audio loading for Qwen2-Audio-style models: decode, first channel, resample, fit the feature window.

Qwen2-Audio (and R1-AQA's data loader) feed the model 16 kHz mono audio, the first channel of the file,
and the Whisper feature extractor sees at most a 30 s window (3000 log-mel frames). Everything here is
numpy; files are read with soundfile (libsndfile: wav, flac, ogg, mp3, ...) and, when that fails or the
container is not an audio file (m4a, the audio track of an mp4), with PyAV.
"""
from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from mmpost.types import MediaError
from mmpost.modalities.common import resolve_media_path

log = logging.getLogger(__name__)

AudioSource = Union[str, os.PathLike, bytes, bytearray, dict, tuple]

QWEN2_AUDIO_SAMPLING_RATE = 16_000
QWEN2_AUDIO_WINDOW_SECONDS = 30.0
# A clip shorter than this gives Qwen2-Audio a single audio embedding, which its forward mistakes for
# the legacy unexpanded prompt format; 0.1 s = 10 mel frames = 2 embeddings. Shorter clips are padded.
MIN_AUDIO_SECONDS = 0.1


@dataclass
class LoadedAudio:
    """A mono float32 waveform at `sampling_rate`, and what was done to the file to get it."""

    waveform: np.ndarray  # [samples] float32
    sampling_rate: int
    source: str
    original_sampling_rate: int
    channels: int
    original_seconds: float
    actions: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.waveform.shape[0] / self.sampling_rate

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "original_sampling_rate": self.original_sampling_rate,
            "channels": self.channels,
            "original_seconds": self.original_seconds,
            "seconds": self.seconds,
            "actions": list(self.actions),
        }


def describe_audio_source(source: Any) -> str:
    """A short name for an audio source, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, dict):
        return str(source.get("path") or "<audio array>")
    if isinstance(source, tuple):
        return "<(array, sampling_rate)>"
    return f"<{type(source).__name__}>"


def _resolve_path(source: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    return resolve_media_path(source, root, "audio")


def _read_with_soundfile(handle: Any) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(handle, dtype="float32", always_2d=True)
    return data, int(rate)


def _read_with_pyav(handle: Any) -> tuple[np.ndarray, int]:
    """All samples of the first audio stream as float32 [samples, channels]."""
    import av

    with av.open(handle) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        stream = container.streams.audio[0]
        # Planar float output whatever the codec's native layout, so every frame is [channels, samples].
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        chunks = []
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                chunks.append(converted.to_ndarray())
        for converted in resampler.resample(None):
            chunks.append(converted.to_ndarray())
        rate = int(stream.rate)
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), rate
    return np.concatenate(chunks, axis=1).T.astype(np.float32), rate


def read_audio(opener: Any, name: str) -> tuple[np.ndarray, int]:
    """Decode with soundfile, then PyAV; returns float32 [samples, channels] and the file's sample rate.

    `opener()` returns a fresh binary file object. A missing, empty or undecodable file raises
    `MediaError` naming it (and both decoders' complaints).
    """
    errors = []
    for decoder in (_read_with_soundfile, _read_with_pyav):
        try:
            with opener() as handle:
                return decoder(handle)
        except FileNotFoundError as error:
            raise MediaError(f"audio {name}: file not found") from error
        except IsADirectoryError as error:
            raise MediaError(f"audio {name}: is a directory, not an audio file") from error
        except PermissionError as error:
            raise MediaError(f"audio {name}: permission denied") from error
        except Exception as error:  # noqa: BLE001 - each decoder has its own error types
            errors.append(f"{decoder.__name__.removeprefix('_read_with_')}: {type(error).__name__}: {error}")
    raise MediaError(f"audio {name}: not a readable audio file ({'; '.join(errors)})")


def resample(waveform: np.ndarray, original_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling [samples] -> [ceil(samples * target / original)] (scipy's `resample_poly`).

    The rate ratio is reduced by its gcd (44.1 kHz -> 16 kHz is up 160, down 441); a Kaiser-windowed
    FIR filter removes what lies above the new Nyquist frequency.
    """
    if original_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sampling rates must be positive, got {original_rate} -> {target_rate}")
    if original_rate == target_rate or waveform.size == 0:
        return waveform.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    divisor = math.gcd(int(original_rate), int(target_rate))
    return resample_poly(waveform, target_rate // divisor, original_rate // divisor).astype(np.float32)


def _raw_audio(source: AudioSource, root: str | os.PathLike | None) -> tuple[np.ndarray, int, str]:
    """(samples [n] or [n, channels], sample rate, name) from any supported source."""
    if isinstance(source, dict) and "array" in source:  # a `datasets.Audio` value
        rate = source.get("sampling_rate")
        name = describe_audio_source(source)
        if not rate:
            raise MediaError(f"audio {name}: an audio array needs its 'sampling_rate'")
        return np.asarray(source["array"], dtype=np.float32), int(rate), name
    if isinstance(source, dict) and source.get("bytes") is not None:
        return _raw_audio(bytes(source["bytes"]), root)
    if isinstance(source, dict) and source.get("path") is not None:
        return _raw_audio(source["path"], root)
    if isinstance(source, tuple) and len(source) == 2:
        array, rate = source
        return np.asarray(array, dtype=np.float32), int(rate), describe_audio_source(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        name = describe_audio_source(data)
        if not data:
            raise MediaError(f"audio {name}: empty data")
        samples, rate = read_audio(lambda: io.BytesIO(data), name)
        return samples, rate, name
    if isinstance(source, (str, os.PathLike)):
        path = _resolve_path(source, root)
        name = str(path)
        if path.is_file() and path.stat().st_size == 0:
            raise MediaError(f"audio {name}: empty file (0 bytes)")
        samples, rate = read_audio(lambda: open(path, "rb"), name)
        return samples, rate, name
    if isinstance(source, np.ndarray):
        raise MediaError("audio <numpy array>: a bare array has no sampling rate; give (array, sampling_rate) "
                         "or {'array': ..., 'sampling_rate': ...}")
    raise MediaError(f"audio {describe_audio_source(source)}: unsupported source type {type(source).__name__}; "
                     "give a path, bytes, (array, sampling_rate) or {'array', 'sampling_rate'}")


def load_audio(
    source: AudioSource,
    *,
    root: str | os.PathLike | None = None,
    sampling_rate: int = QWEN2_AUDIO_SAMPLING_RATE,
    max_seconds: float | None = QWEN2_AUDIO_WINDOW_SECONDS,
    min_seconds: float = MIN_AUDIO_SECONDS,
) -> LoadedAudio:
    """Load audio as Qwen2-Audio / R1-AQA feed it: the first channel, at `sampling_rate`, float32.

    Sources: a path (relative to `root`), raw bytes, `(array, rate)` or a `datasets.Audio` dict. Each
    change is logged and listed in `actions`: resampled (info), other channels dropped (info),
    truncated to `max_seconds` (the feature extractor's window; warning), padded with silence to
    `min_seconds` (warning). A missing, empty, undecodable or zero-length file, or non-finite
    samples, raise `MediaError` naming the source.
    """
    samples, original_rate, name = _raw_audio(source, root)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise MediaError(f"audio {name}: expected [samples] or [samples, channels], got shape {samples.shape}")
    channels = int(samples.shape[1])
    if samples.shape[0] == 0 or channels == 0:
        raise MediaError(f"audio {name}: no samples (zero-length audio)")
    if not np.isfinite(samples).all():
        raise MediaError(f"audio {name}: contains NaN or infinite samples")
    original_seconds = samples.shape[0] / original_rate
    actions: list[str] = []
    # R1-AQA keeps `waveform[0]`, the first channel, rather than a down-mix.
    waveform = np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    if channels > 1:
        actions.append(f"kept the first of {channels} channels")
        log.info("audio %s: kept the first of %d channels", name, channels)
    if original_rate != sampling_rate:
        waveform = resample(waveform, original_rate, sampling_rate)
        actions.append(f"resampled {original_rate} Hz -> {sampling_rate} Hz")
        log.info("audio %s: resampled %d Hz -> %d Hz", name, original_rate, sampling_rate)
    if max_seconds is not None and waveform.shape[0] > round(max_seconds * sampling_rate):
        keep = int(round(max_seconds * sampling_rate))
        actions.append(f"truncated {waveform.shape[0] / sampling_rate:.2f} s to the {max_seconds:g} s feature window")
        log.warning("audio %s: %.2f s is longer than the %g s feature window; truncated", name,
                    waveform.shape[0] / sampling_rate, max_seconds)
        waveform = waveform[:keep]
    shortest = int(math.ceil(min_seconds * sampling_rate))
    if waveform.shape[0] < shortest:
        actions.append(f"padded {waveform.shape[0] / sampling_rate:.3f} s with silence to {min_seconds:g} s")
        log.warning("audio %s: %.3f s is shorter than %g s; padded with silence", name,
                    waveform.shape[0] / sampling_rate, min_seconds)
        waveform = np.pad(waveform, (0, shortest - waveform.shape[0]))
    return LoadedAudio(waveform=waveform, sampling_rate=sampling_rate, source=name,
                       original_sampling_rate=int(original_rate), channels=channels,
                       original_seconds=original_seconds, actions=actions)


def qwen2_audio_embedding_count(num_samples: int, hop_length: int = 160) -> int:
    """Audio embeddings Qwen2-Audio gives `num_samples` of 16 kHz audio: frames = ceil(samples / hop) (the
    Whisper extractor's attention mask taken every `hop` samples), then the
    stride-2 convolution ((frames - 1) // 2 + 1) and the stride-2 average pool ((x - 2) // 2 + 1).

    1 s = 100 frames -> 50 -> 25 embeddings; 30 s -> 750.
    """
    frames = -(-num_samples // hop_length)
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1
