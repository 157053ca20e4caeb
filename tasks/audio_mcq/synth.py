"""Synthetic audio clips of sine tones, fully determined by a `random.Random`, written as real wav files.

Three question kinds, each answerable from the waveform alone:
- "pitch": two tones, "which is higher, the first or the second?" (frequencies at least a fifth apart);
- "count": 1-4 short beeps of one frequency separated by silence, "how many beeps?";
- "duration": two tones of clearly different lengths, "which is longer, the first or the second?".
"""
from __future__ import annotations

import hashlib
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLING_RATE = 16_000
AMPLITUDE = 0.5
RAMP_SECONDS = 0.01  # raised-cosine fade in/out, so tone edges do not click
FREQUENCY_RANGE = (220, 1760)  # Hz, integer frequencies
MIN_PITCH_RATIO = 1.5  # a perfect fifth: far apart for any listener (and any tiny model)
COUNT_WORDS = ("one", "two", "three", "four")


@dataclass(frozen=True)
class Tone:
    frequency: int  # Hz
    seconds: float


@dataclass(frozen=True)
class Clip:
    """Tones separated by `gap_seconds` of silence, preceded by `lead_seconds` of silence."""

    tones: tuple[Tone, ...]
    gap_seconds: float
    lead_seconds: float

    def key(self) -> str:
        """A canonical text of everything that decides the samples; equal keys mean equal audio."""
        tones = ";".join(f"{t.frequency}:{t.seconds:.3f}" for t in self.tones)
        return f"{SAMPLING_RATE}|{self.lead_seconds:.3f}|{self.gap_seconds:.3f}|{tones}"

    def digest(self) -> str:
        return hashlib.sha256(self.key().encode()).hexdigest()[:20]


def tone(frequency: float, seconds: float, *, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A sine of `frequency` Hz, `AMPLITUDE` peak, with raised-cosine ramps: float32 [round(seconds * rate)]."""
    n = int(round(seconds * sampling_rate))
    t = np.arange(n) / sampling_rate
    wave = AMPLITUDE * np.sin(2 * np.pi * frequency * t)
    ramp = min(int(RAMP_SECONDS * sampling_rate), n // 2)
    if ramp:
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        wave[:ramp] *= fade
        wave[n - ramp:] *= fade[::-1]
    return wave.astype(np.float32)


def render(clip: Clip, *, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """The clip's samples, float32 [n]."""
    silence = lambda seconds: np.zeros(int(round(seconds * sampling_rate)), dtype=np.float32)  # noqa: E731
    parts = [silence(clip.lead_seconds)]
    for index, t in enumerate(clip.tones):
        if index:
            parts.append(silence(clip.gap_seconds))
        parts.append(tone(t.frequency, t.seconds, sampling_rate=sampling_rate))
    parts.append(silence(0.05))
    return np.concatenate(parts)


def pitch_clip(rng: random.Random) -> tuple[Clip, str]:
    """Two 0.4 s tones at least `MIN_PITCH_RATIO` apart; answer "first" or "second" (the higher one)."""
    low = rng.randint(FREQUENCY_RANGE[0], int(FREQUENCY_RANGE[1] / MIN_PITCH_RATIO))
    high = rng.randint(int(np.ceil(low * MIN_PITCH_RATIO)), FREQUENCY_RANGE[1])
    first_is_higher = rng.random() < 0.5
    pair = (high, low) if first_is_higher else (low, high)
    clip = Clip(tuple(Tone(f, 0.4) for f in pair), gap_seconds=0.2, lead_seconds=round(rng.uniform(0.0, 0.2), 2))
    return clip, "first" if first_is_higher else "second"


def count_clip(rng: random.Random) -> tuple[Clip, str]:
    """1-4 beeps of 0.15 s at one frequency, 0.15 s apart; answer the count as a word ("three")."""
    count = rng.randint(1, 4)
    frequency = rng.randint(*FREQUENCY_RANGE)
    clip = Clip(tuple(Tone(frequency, 0.15) for _ in range(count)), gap_seconds=0.15,
                lead_seconds=round(rng.uniform(0.0, 0.3), 2))
    return clip, COUNT_WORDS[count - 1]


def duration_clip(rng: random.Random) -> tuple[Clip, str]:
    """A 0.2 s and a 0.6 s tone (frequencies drawn independently); answer which one is longer."""
    first_is_longer = rng.random() < 0.5
    lengths = (0.6, 0.2) if first_is_longer else (0.2, 0.6)
    tones = tuple(Tone(rng.randint(*FREQUENCY_RANGE), seconds) for seconds in lengths)
    clip = Clip(tones, gap_seconds=0.25, lead_seconds=round(rng.uniform(0.0, 0.2), 2))
    return clip, "first" if first_is_longer else "second"


def write_wav(clip: Clip, cache_dir: str | os.PathLike) -> Path:
    """Write the clip as 16-bit PCM wav named by its digest (reused when present); returns the path.

    Written to a temporary name and renamed, so concurrent processes never read a half-written file.
    """
    import soundfile

    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{clip.digest()}.wav"
    if path.is_file() and path.stat().st_size > 0:
        return path
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".wav.part")
    os.close(handle)
    try:
        soundfile.write(temporary, render(clip), SAMPLING_RATE, subtype="PCM_16", format="WAV")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
