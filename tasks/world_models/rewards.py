"""RLIR rewards: recover the input actions from generated frames with an inverse dynamics model (IDM).

RLIR (Ye et al. 2025, arXiv 2509.23958; no public code, the reward is as third-party summaries give it):
for a generated trajectory [x_0, x̂_1 … x̂_F] conditioned on actions a_1 … a_F,

    â_t = argmax_a IDM(a | x̂_{t−1}, x̂_t)        R = (1/F) Σ_t 1[â_t = a_t]                  (`idm_exact`)

Our variants (reconstructions): `idm_soft` R = (1/F) Σ_t p_IDM(a_t | x̂_{t−1}, x̂_t), the dense reward the
team's spike needed for the AR model to learn (binary exact match collapsed it); `idm_continuous`
R = (1/F) Σ_t exp(−‖d̂_t − d_t‖²/(D·τ)) for continuous actions (RLinf's action-similarity form), with d the
(d_row, d_col) displacement of the action and d̂ the continuous IDM's estimate.

Gold metrics (weight 0 in the recipe: logged, never optimised, the guard against IDM hacking):
`idm_gold_exact` is `idm_exact` under a second IDM trained on a disjoint split with another seed;
`pixel_mae` is mean |x̂_t − x_t| / 255 against the ground-truth frames (RLVR-World's pixel term; lower is better).

Malformed or short generations score on the frames present: transition t counts only if x̂_{t−1} and x̂_t
both decoded (x̂_0 is the context frame); a missing transition scores 0 (a missing frame has MAE 1).
Every reward declares `completion_ids`: with the modality's id -> name table it decodes ids, else the text.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch

from mmpost.modalities.frames.processing import frames_from_token_names
from mmpost.registry import REWARDS
from mmpost.tasks.world_models.gridworld import ACTION_DELTAS
from mmpost.tasks.world_models.idm import idm_action_probs, idm_artifact, idm_displacements
from mmpost.types import DataError, Sample

DEFAULT_LEVELS = 2
DEFAULT_TAU = 0.5
_PIXEL_NAME = re.compile(r"<p\d+>")


def _conditioning(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    decoded = sample.get("decoded") or {}
    context = decoded.get("context_frames", sample.get("context_frames"))
    actions = decoded.get("actions", sample.get("actions"))
    if context is None or actions is None:
        raise DataError(f"sample {sample.get('id', '?')!r}: IDM rewards need 'context_frames' and 'actions'")
    return np.asarray(context, dtype=np.uint8), np.asarray(actions, dtype=np.int64).reshape(-1)


def generated_frames(completion: str, sample: Sample, completion_ids: Sequence[int] | None = None) -> list[np.ndarray | None]:
    """The completion's F frames (None where malformed or missing), decoded from ids when the sample carries the
    modality's id -> name table, else from the text."""
    context, actions = _conditioning(sample)
    table = (sample.get("decoded") or {}).get("frame_token_names")
    if completion_ids is not None and table is not None:
        names = [table[int(i)] if 0 <= int(i) < len(table) else "" for i in completion_ids]
    else:
        names = completion.split()
    levels = sum(1 for n in table if _PIXEL_NAME.fullmatch(n)) if table is not None else int(sample.get("pixel_levels", DEFAULT_LEVELS))
    return frames_from_token_names(names, frame_shape=context.shape[1:], num_frames=len(actions), levels=levels)


def transition_stack(context_frame: np.ndarray, frames: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """[x̂_0 = context, x̂_1 … x̂_F] as uint8 [F+1, H, W] (missing frames zero-filled) and which transitions are
    valid: bool [F], t valid iff frames t−1 and t both exist."""
    present = np.array([True] + [f is not None for f in frames])
    stack = np.stack([context_frame] + [f if f is not None else np.zeros_like(context_frame) for f in frames])
    return stack, present[:-1] & present[1:]


def _batch(completions, samples, completion_ids):
    """Stacks [B, F+1, H, W], valid [B, F], true actions [B, F] (all rows of a batch share F and the frame shape)."""
    stacks, valid, actions = [], [], []
    for i, (completion, sample) in enumerate(zip(completions, samples, strict=True)):
        context, true_actions = _conditioning(sample)
        frames = generated_frames(completion, sample, completion_ids[i] if completion_ids is not None else None)
        stack, ok = transition_stack(context[-1], frames)
        stacks.append(stack), valid.append(ok), actions.append(true_actions)
    return np.stack(stacks), np.stack(valid), np.stack(actions)


def frame_scores(completions: Sequence[str], samples: Sequence[Sample], *, mode: str = "soft",
                 completion_ids: Sequence[Sequence[int]] | None = None, idm: str = "idm",
                 idm_path: str | None = None, tau: float = DEFAULT_TAU) -> np.ndarray:
    """Per-frame scores [B, F] in [0, 1]: `exact` 1[â_t = a_t], `soft` p(a_t | ·), `continuous` exp(−mse/τ);
    invalid transitions score 0. `idm` names the cached IDM ("idm", "idm_gold", "idm_continuous")."""
    if not completions:
        return np.zeros((0, 0))
    stacks, valid, actions = _batch(completions, samples, completion_ids)
    if mode == "continuous":
        model = idm_artifact(idm if idm != "idm" else "idm_continuous", idm_path)
        predicted = idm_displacements(model, torch.as_tensor(stacks)).numpy()
        scores = continuous_action_reward(predicted, ACTION_DELTAS[actions].astype(np.float64), tau)
    elif mode in ("exact", "soft"):
        probs = idm_action_probs(idm_artifact(idm, idm_path), torch.as_tensor(stacks)).numpy()
        if mode == "exact":
            scores = (probs.argmax(-1) == actions).astype(np.float64)
        else:
            scores = np.take_along_axis(probs, actions[..., None], -1)[..., 0].astype(np.float64)
    else:
        raise ValueError(f"IDM reward mode must be exact | soft | continuous, got {mode!r}")
    return np.where(valid, scores, 0.0)


def continuous_action_reward(predicted: np.ndarray, target: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """exp(−mean_d (p_d − t_d)² / τ): [..., D], [..., D] -> [...]. 1 for an exact match, → 0 as the error grows."""
    if tau <= 0:
        raise ValueError(f"idm_continuous: tau must be > 0, got {tau}")
    predicted, target = np.asarray(predicted, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return np.exp(-((predicted - target) ** 2).mean(-1) / tau)


@REWARDS.register("idm_exact")
def idm_exact(completions: Sequence[str], samples: Sequence[Sample], *, completion_ids: Sequence[Sequence[int]] | None = None,
              idm_path: str | None = None) -> list[float]:
    """RLIR's reward: fraction of frames whose IDM argmax action equals the input action."""
    return frame_scores(completions, samples, mode="exact", completion_ids=completion_ids, idm_path=idm_path).mean(-1).tolist()


@REWARDS.register("idm_soft")
def idm_soft(completions: Sequence[str], samples: Sequence[Sample], *, completion_ids: Sequence[Sequence[int]] | None = None,
             idm_path: str | None = None) -> list[float]:
    """Mean over frames of p_IDM(a_true | previous frame, generated frame)."""
    return frame_scores(completions, samples, mode="soft", completion_ids=completion_ids, idm_path=idm_path).mean(-1).tolist()


@REWARDS.register("idm_continuous")
def idm_continuous(completions: Sequence[str], samples: Sequence[Sample], *, completion_ids: Sequence[Sequence[int]] | None = None,
                   idm_path: str | None = None, tau: float = DEFAULT_TAU) -> list[float]:
    """Mean over frames of exp(−mse(d̂_t, d_t)/τ) with the continuous-head IDM's displacement d̂_t."""
    return frame_scores(completions, samples, mode="continuous", completion_ids=completion_ids, idm_path=idm_path,
                        tau=tau).mean(-1).tolist()


@REWARDS.register("idm_gold_exact")
def idm_gold_exact(completions: Sequence[str], samples: Sequence[Sample], *,
                   completion_ids: Sequence[Sequence[int]] | None = None, idm_path: str | None = None) -> list[float]:
    """`idm_exact` under the held-out gold IDM (disjoint data, another seed): a gold metric, weight 0."""
    return frame_scores(completions, samples, mode="exact", completion_ids=completion_ids, idm="idm_gold",
                        idm_path=idm_path).mean(-1).tolist()


@REWARDS.register("pixel_mae")
def pixel_mae(completions: Sequence[str], samples: Sequence[Sample], *,
              completion_ids: Sequence[Sequence[int]] | None = None) -> list[float | None]:
    """Mean |x̂_t − x_t| / 255 over generated frames vs the ground truth (a missing frame counts 1.0); None for a
    sample without `target_frames`. Lower is better: a gold metric, weight 0."""
    values: list[float | None] = []
    for i, (completion, sample) in enumerate(zip(completions, samples, strict=True)):
        target = (sample.get("decoded") or {}).get("target_frames", sample.get("target_frames"))
        if target is None:
            values.append(None)
            continue
        frames = generated_frames(completion, sample, completion_ids[i] if completion_ids is not None else None)
        target = np.asarray(target, dtype=np.float64)
        errors = [1.0 if f is None else float(np.abs(f.astype(np.float64) - t).mean() / 255.0) for f, t in zip(frames, target)]
        values.append(float(np.mean(errors)))
    return values
