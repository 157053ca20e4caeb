"""Action tokenisation for VLAs: per-dimension uniform binning over dataset statistics (OpenVLA style).

Each action dimension d is cut into `n_bins` equal bins over [low_d, high_d] (from dataset statistics, e.g. the
1st/99th percentiles as OpenVLA uses); bin i of any dimension is one token. De-tokenisation returns bin
centres, so a round trip is exact to within half a bin width.

    width_d = (high_d − low_d) / n_bins
    bin(a)  = clamp(floor((a − low_d) / width_d), 0, n_bins − 1)
    centre(i) = low_d + (i + ½)·width_d

Out-of-range actions are CLIPPED into the first/last bin and COUNTED (`ActionTokenizer.clipped_values`);
nothing raises, because real demonstrations routinely hold a few values past the percentile bounds.

Differences from OpenVLA (`prismatic/vla/action_tokenizer.py`, read): OpenVLA normalises actions to [−1, 1]
first, uses `np.linspace(−1, 1, 256)` as bin *edges* (so 255 bins, and `np.digitize` indices 1..256), and maps
index k to token id `vocab_size − k`, overwriting the last 256 tokens of the vocabulary. Here the bins are
exactly `n_bins`, bin i maps to `token_ids[i]`, which is either the last `n_bins` ids in ascending order
(`reserved`) or the ids of added tokens `<act_0>` … `<act_{n−1}>` (`added`, the tiny VLA's choice).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

DEFAULT_BINS = 256
ACTION_TOKEN_PREFIX = "<act_"
_ACTION_TOKEN = re.compile(r"<act_(\d+)>")


@dataclass(frozen=True)
class ActionStats:
    """Per-dimension range [low_d, high_d] that the bins cover."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError(f"action stats need equal, non-empty low/high; got {self.low} and {self.high}")
        bad = [d for d, (lo, hi) in enumerate(zip(self.low, self.high)) if not hi > lo]
        if bad:
            raise ValueError(f"action stats: high must exceed low in every dimension; not in dimension(s) {bad}")

    @property
    def dims(self) -> int:
        return len(self.low)

    @classmethod
    def from_actions(cls, actions: Any, quantiles: tuple[float, float] | None = (0.01, 0.99)) -> "ActionStats":
        """Bounds from demonstrations [..., D]: the given quantiles (OpenVLA's q01/q99), or min/max with None.
        A dimension whose bounds coincide (a constant action) is widened by ±1e-3 so it still has bins."""
        flat = np.asarray(actions, dtype=np.float64).reshape(-1, np.shape(actions)[-1])
        if quantiles is None:
            low, high = flat.min(0), flat.max(0)
        else:
            low, high = np.quantile(flat, quantiles[0], axis=0), np.quantile(flat, quantiles[1], axis=0)
        same = high - low < 1e-9
        low, high = np.where(same, low - 1e-3, low), np.where(same, high + 1e-3, high)
        return cls(tuple(float(v) for v in low), tuple(float(v) for v in high))

    def to_dict(self) -> dict[str, list[float]]:
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, data: dict) -> "ActionStats":
        return cls(tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"]))


def discretize(actions: Any, stats: ActionStats, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin indices [..., D] (int64 in [0, n_bins)) and a mask [..., D] of the values that were clipped."""
    values = np.asarray(actions, dtype=np.float64)
    if values.shape[-1] != stats.dims:
        raise ValueError(f"actions have {values.shape[-1]} dimensions but the stats have {stats.dims}")
    low, high = np.array(stats.low), np.array(stats.high)
    clipped = (values < low) | (values > high)
    width = (high - low) / n_bins
    indices = np.floor((np.clip(values, low, high) - low) / width).astype(np.int64)
    return np.clip(indices, 0, n_bins - 1), clipped  # a = high lands in bin n_bins, the last bin holds it


def bin_centres(indices: Any, stats: ActionStats, n_bins: int) -> np.ndarray:
    """low_d + (i + ½)·width_d for bin indices [..., D]."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= n_bins):
        raise ValueError(f"bin indices must lie in [0, {n_bins}); got {indices.min()}..{indices.max()}")
    low, high = np.array(stats.low), np.array(stats.high)
    return low + (indices + 0.5) * (high - low) / n_bins


def action_token_names(n_bins: int, prefix: str = ACTION_TOKEN_PREFIX) -> list[str]:
    return [f"{prefix}{i}>" for i in range(n_bins)]


def parse_action_bins(text: str) -> list[int]:
    """Bin indices of the `<act_i>` tokens in a decoded completion, in order."""
    return [int(i) for i in _ACTION_TOKEN.findall(text)]


def add_action_tokens(tokenizer: Any, n_bins: int = DEFAULT_BINS, prefix: str = ACTION_TOKEN_PREFIX) -> list[int]:
    """Add `<act_0>`…`<act_{n−1}>` as single, non-special tokens (so decoding with skip_special_tokens keeps
    them and rewards can read them); return their ids in bin order."""
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(name, special=False, normalized=False) for name in action_token_names(n_bins, prefix)])
    return [tokenizer.convert_tokens_to_ids(name) for name in action_token_names(n_bins, prefix)]


class ActionTokenizer:
    """Actions [T, D] <-> token ids (row-major: step by step, dimension by dimension).

    Build with `ActionTokenizer.reserved(stats, vocab_size)` (the last `n_bins` ids of the vocabulary) or
    `ActionTokenizer.added(stats, tokenizer)` (the `<act_i>` tokens of a tokenizer).
    """

    def __init__(self, stats: ActionStats, token_ids: Sequence[int], *, text_tokens: Sequence[str] | None = None) -> None:
        if len(set(token_ids)) != len(token_ids) or len(token_ids) < 2:
            raise ValueError("action token ids must be at least 2 distinct ids")
        self.stats = stats
        self.n_bins = len(token_ids)
        self.token_ids = [int(i) for i in token_ids]
        self.text_tokens = list(text_tokens) if text_tokens is not None else None
        self._bin_of = {token: index for index, token in enumerate(self.token_ids)}
        self.clipped_values = 0  # running count of clipped action values (see module docstring)

    @classmethod
    def reserved(cls, stats: ActionStats, vocab_size: int, n_bins: int = DEFAULT_BINS) -> "ActionTokenizer":
        if n_bins >= vocab_size:
            raise ValueError(f"{n_bins} action bins do not fit a vocabulary of {vocab_size}")
        return cls(stats, list(range(vocab_size - n_bins, vocab_size)))

    @classmethod
    def added(cls, stats: ActionStats, tokenizer: Any, n_bins: int = DEFAULT_BINS,
              prefix: str = ACTION_TOKEN_PREFIX) -> "ActionTokenizer":
        names = action_token_names(n_bins, prefix)
        vocab = tokenizer.get_vocab()
        missing = [n for n in names if n not in vocab]
        if missing:
            raise ValueError(f"the tokenizer lacks {len(missing)} action token(s), e.g. {missing[0]}; "
                             "build it with add_action_tokens (the tiny-vla-qwen2.5-vl zoo entry does)")
        return cls(stats, [vocab[n] for n in names], text_tokens=names)

    def bins(self, actions: Any) -> np.ndarray:
        """Bin indices [T, D]; clipped values are added to `clipped_values`."""
        indices, clipped = discretize(np.atleast_2d(np.asarray(actions, dtype=np.float64)), self.stats, self.n_bins)
        self.clipped_values += int(clipped.sum())
        return indices

    def encode(self, actions: Any) -> list[int]:
        """Token ids of `actions` [T, D] (or [D]): T·D ids."""
        return [self.token_ids[i] for i in self.bins(actions).reshape(-1)]

    def to_text(self, actions: Any) -> str:
        """'<act_i><act_j>…' for `added` tokenizers (what a demonstration completion holds)."""
        if self.text_tokens is None:
            raise ValueError("to_text needs an `added` action tokenizer (reserved ids have no text of their own)")
        return "".join(self.text_tokens[i] for i in self.bins(actions).reshape(-1))

    def decode(self, token_ids: Sequence[int]) -> np.ndarray:
        """Bin centres [T, D] of T·D action token ids; a non-action id or a partial step raises ValueError."""
        ids = [int(i) for i in token_ids]
        strangers = [i for i in ids if i not in self._bin_of]
        if strangers:
            raise ValueError(f"token id(s) {strangers[:5]} are not action tokens")
        if len(ids) % self.stats.dims:
            raise ValueError(f"{len(ids)} action tokens do not fill whole steps of {self.stats.dims} dimensions")
        return bin_centres(np.array([self._bin_of[i] for i in ids]).reshape(-1, self.stats.dims), self.stats, self.n_bins)

    def allowed_token_ids(self) -> list[int]:
        return sorted(self.token_ids)


def suppressed_token_ids_for(vocab_size: int, allowed: Sequence[int], always_allowed: Sequence[int] = ()) -> list[int]:
    """The complement of `allowed` ∪ `always_allowed` (e.g. EOS) in [0, vocab_size): what a rollout backend's
    `suppress_tokens` needs so that only action tokens can be sampled."""
    keep = set(int(i) for i in allowed) | set(int(i) for i in always_allowed)
    return [i for i in range(vocab_size) if i not in keep]


def restrict_logits(logits: torch.Tensor, allowed: Sequence[int]) -> torch.Tensor:
    """`logits` [..., V] with every id outside `allowed` set to −inf (a restricted-vocabulary sampling step)."""
    mask = torch.full((logits.shape[-1],), float("-inf"), dtype=logits.dtype, device=logits.device)
    mask[torch.as_tensor(list(allowed), dtype=torch.long, device=logits.device)] = 0.0
    return logits + mask
