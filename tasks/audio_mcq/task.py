"""The synthetic audio multiple-choice task in R1-AQA's prompt format (registered as task "audio_mcq").

Clips of sine tones are written as real 16 kHz wav files into a cache folder, so training reads them
through the same decoder path as real data. Train and held-out clips come from disjoint parts of clip
space (by a hash of the clip's parameters), so the splits never share a clip.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any, Sequence

from mmpost.registry import TASKS
from mmpost.tasks.common import canonical_split, check_kinds
from mmpost.types import Message, Sample
from mmpost.tasks.audio_mcq.synth import COUNT_WORDS, Clip, count_clip, duration_clip, pitch_clip, write_wav

KINDS: tuple[str, ...] = ("pitch", "count", "duration")
QUESTIONS = {
    "pitch": ("Which tone is higher in pitch, the first or the second?", ["first", "second"]),
    "count": ("How many beeps are there?", list(COUNT_WORDS)),
    "duration": ("Which tone is longer, the first or the second?", ["first", "second"]),
}
MAKERS = {"pitch": pitch_clip, "count": count_clip, "duration": duration_clip}
DEFAULT_SIZES = {"train": 256, "heldout": 48}
HELDOUT_FRACTION_DENOMINATOR = 8
# AudioMCQ's GRPO system prompt (training_scripts/grpo.sh, per the team's research notes).
AUDIOMCQ_SYSTEM_PROMPT = "You are an audio understanding model that answers multiple choice questions based on audio content."


def r1aqa_prompt_text(question: str, choices: Sequence[str], *, video_to_audio: bool = False) -> str:
    """R1-AQA's user text (`src/dataset/dataset.py`): question, the choices as a Python list repr, answer tag.

    `video_to_audio` applies R1-AQA's `question.replace('video', 'audio')`, written for AVQA's questions.
    """
    if video_to_audio:
        question = question.replace("video", "audio")
    return (f"{question} Please choose the answer from the following options: {list(choices)}. "
            "Output the final answer in <answer> </answer>.")


def default_cache_dir() -> Path:
    """`$MMPOST_CACHE/audio_mcq`, else `~/.cache/mmpost/audio_mcq`."""
    base = os.environ.get("MMPOST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmpost")
    return Path(base) / "audio_mcq"


def clip_split(clip: Clip) -> str:
    """'heldout' or 'train': a fixed partition of all possible clips, whatever the seed or sizes."""
    digest = hashlib.sha256(clip.key().encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


def _clip_in_split(kind: str, rng: random.Random, split: str) -> tuple[Clip, str]:
    while True:
        clip, answer = MAKERS[kind](rng)
        if clip_split(clip) == split:
            return clip, answer


@TASKS.register("audio_mcq")
class AudioMCQTask:
    """Pitch, beep-count and duration questions about synthetic tones, asked the way R1-AQA asks AVQA.

    Options given here are the defaults of `load`. `system_prompt` adds a system turn (AudioMCQ uses
    `AUDIOMCQ_SYSTEM_PROMPT`; R1-AQA none, so the chat template's default system turn applies).
    """

    name = "audio_mcq"
    modality = "audio"
    accuracy_reward = "r1aqa_accuracy"

    def __init__(
        self,
        *,
        seed: int = 0,
        kinds: Sequence[str] | None = None,
        train_size: int = DEFAULT_SIZES["train"],
        heldout_size: int = DEFAULT_SIZES["heldout"],
        cache_dir: str | os.PathLike | None = None,
        system_prompt: str | None = None,
    ) -> None:
        self.seed = seed
        self.kinds = check_kinds("audio_mcq", kinds, KINDS)
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.system_prompt = system_prompt
        self.default_rewards = [
            {"name": "r1aqa_accuracy", "weight": 1.0},
            {"name": "r1aqa_format", "weight": 1.0},
        ]

    def load(self, split: str, *, size: int | None = None, seed: int | None = None,
             kinds: Sequence[str] | None = None) -> list[Sample]:
        """`size` samples of `split` ("train", or "heldout" / its alias "test"), kinds in round-robin.

        Sample i draws from its own stream seeded by (seed, split, i); its wav file is written to
        `cache_dir` (named by the clip's digest, reused when present). Rows: id, audios [absolute path],
        question, choices, answer (the option text), solution (`<answer>{answer}</answer>`), kind.
        """
        split = canonical_split("audio_mcq", split)
        size = self.sizes[split] if size is None else size
        seed = self.seed if seed is None else seed
        kinds = self.kinds if kinds is None else check_kinds("audio_mcq", kinds, KINDS)
        samples = []
        for index in range(size):
            rng = random.Random(f"mmpost.audio_mcq:{seed}:{split}:{index}")
            kind = kinds[index % len(kinds)]
            clip, answer = _clip_in_split(kind, rng, split)
            question, choices = QUESTIONS[kind]
            samples.append({
                "id": f"audio_mcq-{split}-{seed}-{index:05d}",
                "audios": [str(write_wav(clip, self.cache_dir).resolve())],
                "question": question,
                "choices": list(choices),
                "answer": answer,
                "solution": f"<answer>{answer}</answer>",
                "kind": kind,
                "tones": [{"frequency": t.frequency, "seconds": t.seconds} for t in clip.tones],
            })
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        user: dict[str, Any] = {
            "role": "user",
            "content": [{"type": "audio"}, {"type": "text", "text": r1aqa_prompt_text(sample["question"], sample["choices"])}],
        }
        if self.system_prompt:
            return [{"role": "system", "content": self.system_prompt}, user]
        return [user]

    def target(self, sample: Sample) -> str:
        return f"<answer>{sample['answer']}</answer>"
