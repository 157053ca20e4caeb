"""Frames as tokens for autoregressive world models: one token per pixel, word-level vocabulary.

A frame uint8 [H, W] is quantised to `levels` grey levels (level = round(v·(L−1)/255)) and written row-major as
`<p{level}>` tokens. A world-model sequence (RLIR's AR setting, MineWorld/iVideoGPT-style next-frame tokens, here
without a VQ tokenizer because the frames are 8 x 8):

    prompt     = <s> [<ctx> P(context_c)] x C  <a1_{act_1}> ... <aF_{act_F}>  <frame_1>
    completion = P(frame_1) <frame_2> P(frame_2) ... <frame_F> P(frame_F) </s>

Separators and action tokens carry the frame index: a pixel finds its frame's index from the latest separator
and matches the action token of that index by content. With unindexed tokens a 2-4 layer RoPE model must count
65-token strides to pair frame j with action j, which it did not learn in a short SFT (our reconstruction choice,
not RLIR's; MineWorld interleaves action and frame tokens instead, which a completion of frames only cannot).

`frames_from_token_names` is the one decoder (pure, tested): malformed frames come back as None.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
CONTEXT = "<ctx>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
DEFAULT_LEVELS = 2
DEFAULT_MAX_FRAMES = 8
DEFAULT_ACTION_NAMES = ("stay", "up", "down", "left", "right")
_PIXEL = re.compile(r"<p(\d+)>")
_SEPARATOR = re.compile(r"<frame_(\d+)>")


def pixel_token(level: int) -> str:
    return f"<p{int(level)}>"


def separator_token(index: int) -> str:
    """The token that opens generated frame `index` (1-based)."""
    return f"<frame_{int(index)}>"


def action_token(index: int, name: str) -> str:
    """The action taken before frame `index` (1-based), e.g. <a2_left>."""
    return f"<a{int(index)}_{name}>"


@dataclass(frozen=True)
class FrameVocabulary:
    """Which tokens exist: `levels` pixel values, up to `max_frames` generated frames, the action names."""

    levels: int = DEFAULT_LEVELS
    max_frames: int = DEFAULT_MAX_FRAMES
    action_names: tuple[str, ...] = DEFAULT_ACTION_NAMES

    def __post_init__(self) -> None:
        if self.levels < 2 or self.max_frames < 1 or not self.action_names:
            raise ValueError(f"frame vocabulary needs levels >= 2, max_frames >= 1 and actions; got {self}")

    def tokens(self) -> list[str]:
        """Every token in id order: specials, context marker, pixels, separators, actions."""
        return (list(SPECIAL_TOKENS) + [CONTEXT] + [pixel_token(v) for v in range(self.levels)]
                + [separator_token(j) for j in range(1, self.max_frames + 1)]
                + [action_token(j, a) for j in range(1, self.max_frames + 1) for a in self.action_names])

    @classmethod
    def from_vocab(cls, vocab: dict[str, int]) -> "FrameVocabulary":
        """Recover the settings from a saved tokenizer's vocabulary (raises naming what is missing)."""
        levels = sum(1 for t in vocab if _PIXEL.fullmatch(t))
        frames = sum(1 for t in vocab if _SEPARATOR.fullmatch(t))
        names = tuple(t[len("<a1_"):-1] for t in sorted(vocab, key=vocab.get) if t.startswith("<a1_") and t.endswith(">"))
        if not levels or not frames or not names:
            raise ValueError("the tokenizer is not a frame tokenizer: it lacks <pN> pixel, <frame_N> separator or "
                             "<a1_NAME> action tokens (build it with modalities/frames/tiny.py:build_frame_tokenizer)")
        return cls(levels=levels, max_frames=frames, action_names=names)


def quantize(frames: np.ndarray, levels: int) -> np.ndarray:
    """uint8 [..., H, W] -> int64 grey levels in [0, levels): round(v·(L−1)/255)."""
    values = np.asarray(frames, dtype=np.float64)
    return np.rint(values * (levels - 1) / 255.0).astype(np.int64)


def dequantize(levels_array: np.ndarray, levels: int) -> np.ndarray:
    """int grey levels -> uint8: round(level·255/(L−1)). Inverse of `quantize` on its outputs."""
    return np.rint(np.asarray(levels_array, dtype=np.float64) * 255.0 / (levels - 1)).astype(np.uint8)


def frame_token_names(frame: np.ndarray, levels: int) -> list[str]:
    """Row-major pixel tokens of one uint8 frame [H, W]."""
    return [pixel_token(v) for v in quantize(frame, levels).reshape(-1)]


def prompt_token_names(context_frames: np.ndarray, actions: Sequence[int], vocabulary: FrameVocabulary) -> list[str]:
    """<s> [<ctx> P(c)]×C <a1_..> … <aF_..> <frame_1> for context uint8 [C, H, W] and F action indices."""
    if len(actions) > vocabulary.max_frames:
        raise ValueError(f"{len(actions)} actions exceed the tokenizer's max_frames={vocabulary.max_frames}")
    names = [BOS]
    for frame in np.asarray(context_frames):
        names += [CONTEXT] + frame_token_names(frame, vocabulary.levels)
    for j, action in enumerate(actions, start=1):
        if not 0 <= int(action) < len(vocabulary.action_names):
            raise ValueError(f"action {action} at step {j} is outside 0..{len(vocabulary.action_names) - 1}")
        names.append(action_token(j, vocabulary.action_names[int(action)]))
    return names + [separator_token(1)]


def completion_token_names(frames: np.ndarray, levels: int) -> list[str]:
    """P(f1) <frame_2> P(f2) … P(fF) (no EOS) for uint8 frames [F, H, W]: the demonstration completion."""
    names: list[str] = []
    for j, frame in enumerate(np.asarray(frames), start=1):
        if j > 1:
            names.append(separator_token(j))
        names += frame_token_names(frame, levels)
    return names


def frames_from_token_names(names: Sequence[str], *, frame_shape: tuple[int, int], num_frames: int,
                            levels: int) -> list[np.ndarray | None]:
    """Decode a completion (token names, EOS and anything after it ignored) into `num_frames` frames.

    The sequence is cut at every `<frame_N>` separator. Chunk j (1-based) is frame j when it holds exactly
    H·W pixel tokens and nothing else; otherwise (too short, too long, a stray token, a level out of range)
    and for frames the completion never reached, entry j is None. Extra chunks are ignored. Returns uint8 [H, W]
    arrays or None, length `num_frames`.
    """
    height, width = frame_shape
    chunks: list[list[str]] = [[]]
    for name in names:
        if name == EOS:
            break
        if _SEPARATOR.fullmatch(name):
            chunks.append([])
        else:
            chunks[-1].append(name)
    frames: list[np.ndarray | None] = []
    for chunk in chunks[:num_frames]:
        matches = [_PIXEL.fullmatch(n) for n in chunk]
        if len(chunk) != height * width or not all(matches) or any(int(m.group(1)) >= levels for m in matches):
            frames.append(None)
            continue
        frames.append(dequantize(np.array([int(m.group(1)) for m in matches]).reshape(height, width), levels))
    return frames + [None] * (num_frames - len(frames))
