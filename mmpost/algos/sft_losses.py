"""Per-token supervised losses on demonstration tokens: (logprobs, mask) [N, T] -> token_loss [N, T].

`logprobs` holds log p_θ(y_t | y_<t, x) of the TARGET tokens. Values where mask = 0 are arbitrary;
the registered aggregation applies the mask. Each function has `needs_full_distribution`: True only
for losses that also need full-vocabulary log-softmax tensors [N, T, V] (so the trainer knows to
compute them, which costs memory).
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable

import torch

from mmpost.registry import SFT_LOSSES

_WHERE = __name__
_KL_DIRECTIONS = ("forward", "reverse")


def _check(logprobs: torch.Tensor, mask: torch.Tensor) -> None:
    if logprobs.dim() != 2 or mask.shape != logprobs.shape:
        raise ValueError(
            f"{_WHERE}: logprobs and mask must both be [N, T], got {tuple(logprobs.shape)} and {tuple(mask.shape)}"
        )


def _marks(needs_full_distribution: bool) -> Callable[[Callable], Callable]:
    def decorator(fn: Callable) -> Callable:
        fn.needs_full_distribution = needs_full_distribution  # type: ignore[attr-defined]
        return fn

    return decorator


@SFT_LOSSES.register("cross_entropy")
@_marks(False)
def cross_entropy(logprobs: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    """Negative log-likelihood of the target token: -log p. [N, T] -> [N, T]."""
    _check(logprobs, mask)
    return -logprobs


@SFT_LOSSES.register("dft")
@_marks(False)
def dft(logprobs: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    """Dynamic Fine-Tuning (Wu et al. 2025, arXiv 2508.05629, eq. 9): -sg(p)·log p, p = exp(log p).

    The gradient is -p·∇log p = -∇p: SFT's implicit 1/p importance weight is cancelled. Same as
    CHORD's `sft_is`. Paper-faithful DFT; the official repo (yongliang-wu/DFT) now defaults to SA-DFT,
    which is `sa_dft` here. [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    return -torch.exp(logprobs).detach() * logprobs


# SA-DFT token classes: yongliang-wu/DFT `verl/verl/trainer/fsdp_dft_trainer.py`
# (`_get_sa_dft_runtime_config`, `_determine_sa_dft_weight`), the repository's default since SA-DFT landed.
SA_DFT_STOPWORDS = frozenset((
    "the a an and or but if then else for while in on at to from by of is are was were be been being with as "
    "that this these those it its do does did doing so such there here have has had having not no can could "
    "would should may might will shall about into over under again further more most some any each few other "
    "own same").split())
SA_DFT_WEIGHTS = {"numeric_weight": 0.3, "stopword_weight": 1.0, "default_weight": 0.7}


def sa_dft_exponent(token: str, *, numeric_weight: float = 0.3, stopword_weight: float = 1.0,
                    default_weight: float = 0.7, stopwords: frozenset[str] = SA_DFT_STOPWORDS) -> float:
    """SA-DFT's exponent w for one vocabulary token string (as `tokenizer.convert_ids_to_tokens` gives it).

    As the DFT repo: byte-level markers are removed ("Ċ" -> space, then strip, then leading "Ġ"/"▁"),
    a token with any digit gets `numeric_weight`; an empty or punctuation-only token, or a stopword
    (with or without surrounding punctuation), `stopword_weight`; anything else `default_weight`.
    """
    if not token:
        return stopword_weight
    normalized = token.replace("Ċ", " ").strip().lstrip("Ġ▁").lower()
    if any(char.isdigit() for char in normalized):
        return numeric_weight
    stripped = normalized.strip()
    bare = stripped.strip(string.punctuation)
    if not bare or bare in stopwords or stripped in stopwords:
        return stopword_weight
    return default_weight


def sa_dft_exponent_table(tokenizer, **weights: float) -> torch.Tensor:
    """[V] exponents for every id of `tokenizer` (one pass over the vocabulary; the DFT repo caches per id)."""
    size = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    return torch.tensor([sa_dft_exponent(t or "", **weights) for t in tokens], dtype=torch.float32)


@SFT_LOSSES.register("sa_dft")
@_marks(False)
def sa_dft(logprobs: torch.Tensor, mask: torch.Tensor, *, token_exponents: torch.Tensor | None = None,
           **_: object) -> torch.Tensor:
    """SA-DFT (the DFT repository's default loss): -sg(p^w)·log p with a per-token exponent w.

    `loss = CE · pow(p, w).detach()` in yongliang-wu/DFT `_compute_loss_and_backward`, with w from
    `sa_dft_exponent` (0.3 for tokens containing a digit, 1.0 for stopwords and punctuation, 0.7
    otherwise; `sft_loss_args: {numeric_weight, stopword_weight, default_weight}` change them). w = 1
    everywhere is DFT. `token_exponents` [N, T]: w of each target token; the trainer builds it from the
    policy's tokenizer (`needs_token_exponents`). [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    if token_exponents is None:
        raise ValueError(f"{_WHERE}: sa_dft needs `token_exponents` [N, T] (SA-DFT's w per target token); the "
                         "trainer builds them from the tokenizer when `sa_dft.needs_token_exponents` is True")
    if token_exponents.shape != logprobs.shape:
        raise ValueError(f"{_WHERE}: sa_dft token_exponents {tuple(token_exponents.shape)} must match logprobs "
                         f"{tuple(logprobs.shape)}")
    weight = torch.exp(logprobs.detach() * token_exponents.to(logprobs.dtype))  # p^w without forming p first
    return -weight * logprobs


@dataclass(frozen=True)
class SADFTOptions:
    """`algorithm.sft_loss_args` of sa_dft: the exponents w of `sa_dft_exponent` (the engine builds the per-token table
    from them once; `sa_dft` itself receives the table as `token_exponents`)."""

    numeric_weight: float = SA_DFT_WEIGHTS["numeric_weight"]
    stopword_weight: float = SA_DFT_WEIGHTS["stopword_weight"]
    default_weight: float = SA_DFT_WEIGHTS["default_weight"]


sa_dft.options = SADFTOptions


sa_dft.needs_token_exponents = True  # type: ignore[attr-defined]


@SFT_LOSSES.register("chord_phi")
@_marks(False)
def chord_phi(logprobs: torch.Tensor, mask: torch.Tensor, **_: object) -> torch.Tensor:
    """CHORD-φ (Zhang et al. 2025, arXiv 2508.11408): -sg(φ(p))·log p with φ(p) = p(1 - p).

    Down-weights both near-certain and near-impossible expert tokens. Follows Trinity-RFT
    `chord_policy_loss.py` (without its optional `cutoff_prob`). [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    p = torch.exp(logprobs).detach()
    return -(p * (1.0 - p)) * logprobs


def _token_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_v p (log p - log q) over the last dim, with 0·log 0 = 0. [..., V] -> [...]."""
    p = torch.exp(log_p)
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(-1)


@SFT_LOSSES.register("asft")
@_marks(True)
def asft(
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    log_dist: torch.Tensor | None = None,
    ref_log_dist: torch.Tensor | None = None,
    kl_weight: float = 0.1,
    kl_direction: str = "forward",
    **_: object,
) -> torch.Tensor:
    """Anchored SFT (Zhu et al. 2025, arXiv 2509.23753): DFT + kl_weight · per-token KL to the initial model.

    log_dist, ref_log_dist: [N, T, V] log-softmax of the current model and of the frozen initial model
    at the target positions. "forward" = KL(p_ref ‖ p_cur), what the official code computes
    (`F.kl_div(log p_cur, p_ref)`, repo zhuchichi56/ASFT, also the Unsloth port); "reverse" =
    KL(p_cur ‖ p_ref), what the paper text states. [N, T] -> [N, T].
    """
    _check(logprobs, mask)
    if log_dist is None or ref_log_dist is None:
        missing = [n for n, v in (("log_dist", log_dist), ("ref_log_dist", ref_log_dist)) if v is None]
        raise ValueError(
            f"{_WHERE}: asft needs full-vocabulary log-softmax tensors {missing} of shape [N, T, V]; "
            "the trainer computes them when `asft.needs_full_distribution` is True"
        )
    if log_dist.shape != ref_log_dist.shape or log_dist.shape[:2] != logprobs.shape:
        raise ValueError(
            f"{_WHERE}: asft log_dist {tuple(log_dist.shape)} and ref_log_dist {tuple(ref_log_dist.shape)} "
            f"must both be [N, T, V] with N, T = {tuple(logprobs.shape)}"
        )
    if kl_direction not in _KL_DIRECTIONS:
        raise ValueError(f"{_WHERE}: asft kl_direction must be one of {_KL_DIRECTIONS}, got {kl_direction!r}")
    ref_log_dist = ref_log_dist.detach()
    if kl_direction == "forward":
        kl = _token_kl(ref_log_dist, log_dist)
    else:
        kl = _token_kl(log_dist, ref_log_dist)
    return dft(logprobs, mask) + kl_weight * kl
