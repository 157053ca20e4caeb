"""Driving rewards after OpenREAD (arXiv 2512.01830; `wyddmw/OpenREAD`, examples/train/grpo/plugin/plugin.py).

- `driving_trajectory`: the `TrajExpReward` rule (see `processing.trajectory_reward_value`), per completion.
- `driving_judge`: the LLM-as-critic reward for open-ended answers, through `mmpost.judge.Judge` (any
  OpenAI-compatible endpoint, or a local callable), cached. The score is the LAST `****x****` of the reply;
  a reply without one, or a failed judge call, scores 0 and is counted in `JUDGE_REWARD_STATS`.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
from collections import Counter
from typing import Any, Callable, Sequence

from mmpost.judge import Judge
from mmpost.registry import REWARDS
from mmpost.types import DataError, Sample

from .processing import (
    OPENREAD_THRESHOLDS,
    TRAJ_EXP_TEMPERATURES,
    openread_answer_text,
    parse_waypoints,
    trajectory_reward_value,
    waypoints_or_malformed,
)

log = logging.getLogger(__name__)

# Counts per judge id: "scored", "parse_failures" (no ****x**** in the reply), "judge_failures" (the call failed).
JUDGE_REWARD_STATS: dict[str, Counter] = {}
MALFORMED_TRAJECTORY_COUNT = Counter()  # {"malformed": n, "scored": n} over the process, for logging/tests

# The critic instructions follow OpenREAD's continuous Qwen3 judge (system: an evaluator that tells
# hallucinated objects from appropriate reasoning details; user: score the predicted answer against the
# reference in [0, 1], hallucination -> 0, the score wrapped in **** at the end). Our wording, same content.
OPENREAD_CRITIC_SYSTEM = (
    "You are a professional and mature evaluator. Given a predicted answer and a reference answer, you clearly "
    "distinguish hallucination (objects mentioned in the predicted answer that do not exist in the reference "
    "answer) from appropriate reasoning details (such as 'I should wait for them to cross' after 'I see "
    "pedestrians crossing ahead')."
)
OPENREAD_CRITIC_PROMPT = (
    "Compare the predicted answer with the reference answer below and give the predicted answer a continuous "
    "quality score, where 1 means it perfectly matches the reference answer and 0 means it contradicts it. "
    "If the predicted answer hallucinates, the score is 0. Put the score between **** at the end of your final "
    "sentence, e.g. ****1****.\nPredicted Answer: {prediction}\nReference Answer: {reference}"
)
_SCORE = re.compile(r"\*\*\*\*(\d+(?:\.\d+)?)\*\*\*\*")


def critic_score(reply: str | None) -> float | None:
    """The last `****x****` number of a judge reply, clipped to [0, 1]; None when there is none."""
    if reply is None:
        return None
    matches = _SCORE.findall(reply)
    return min(max(float(matches[-1]), 0.0), 1.0) if matches else None


# ---- trajectory --------------------------------------------------------------------------------
def gold_waypoints(sample: Sample, field: str) -> Any:
    value = sample.get(field)
    if value is None:
        raise DataError(f"sample {sample.get('id', '?')!r} has no '{field}' field (six [x, y] waypoints)")
    points = parse_waypoints(value) if isinstance(value, str) else value
    try:
        ok = points is not None and len(points) == 6 and all(len(p) == 2 for p in points)
    except TypeError:
        ok = False
    if not ok:
        raise DataError(f"sample {sample.get('id', '?')!r}: '{field}' must hold six (x, y) waypoints, got {value!r:.120}")
    return points


@REWARDS.register("driving_trajectory")
def driving_trajectory(completions: Sequence[str], samples: Sequence[Sample], *,
                       temperatures: Sequence[float] = TRAJ_EXP_TEMPERATURES,
                       thresholds: Sequence[float] = OPENREAD_THRESHOLDS, field: str = "waypoints") -> list[float]:
    """OpenREAD TrajExpReward: parse six (x, y) from the answer (malformed -> (100, 100) x 6), d_s = mean L2
    of second s's two waypoints, r = (1/3)·Σ_s exp(−τ_s·d_s)·1[d_s ≤ θ_s]. τ = (5, 2, 1), θ = (3, 5, 7) m."""
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        predicted, malformed = waypoints_or_malformed(openread_answer_text(completion))
        MALFORMED_TRAJECTORY_COUNT["malformed" if malformed else "scored"] += 1
        scores.append(trajectory_reward_value(predicted, gold_waypoints(sample, field),
                                              temperatures=temperatures, thresholds=thresholds))
    return scores


# ---- LLM critic --------------------------------------------------------------------------------
def _import_callable(path: str) -> Callable:
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"judge callable {path!r} must be written 'package.module:function'")
    function = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(function):
        raise ValueError(f"judge callable {path!r}: '{attribute}' is not a callable of {module_name}")
    return function


_JUDGES: dict[str, Judge] = {}


def build_judge(spec: Any) -> Judge:
    """A `Judge` from a Judge, a callable `(prompt, system) -> reply`, a 'module:function' string, or a dict of
    `Judge` keyword arguments (`local` may be a 'module:function' string). Dict/string specs are built once per
    process, so the judge's cache and failure counts persist across steps."""
    if isinstance(spec, Judge):
        return spec
    if callable(spec):
        return Judge(local=spec)
    if spec is None:
        raise ValueError("driving_judge needs `judge`: {endpoint: URL, model: ID, cache_dir: ...} or "
                         "{local: 'package.module:function'} (no judge is reachable offline, so none is assumed)")
    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _JUDGES:
        if isinstance(spec, str):
            _JUDGES[key] = Judge(local=_import_callable(spec), name=spec)
        elif isinstance(spec, dict):
            options = dict(spec)
            if isinstance(options.get("local"), str):
                options.setdefault("name", options["local"])
                options["local"] = _import_callable(options["local"])
            _JUDGES[key] = Judge(**options)
        else:
            raise ValueError(f"driving_judge: cannot build a judge from {type(spec).__name__} {spec!r:.80}")
    return _JUDGES[key]


@REWARDS.register("driving_judge")
def driving_judge(completions: Sequence[str], samples: Sequence[Sample], *, judge: Any = None,
                  field: str = "answer", binarize: bool = False, system: str = OPENREAD_CRITIC_SYSTEM,
                  prompt: str = OPENREAD_CRITIC_PROMPT) -> list[float]:
    """OpenREAD's LLM-as-critic reward: the judge scores the answer against the sample's `field` in [0, 1]
    (the last `****x****` of its reply); `binarize` maps it to 1[x > 0.5] (the plugin's discrete variant).
    No score in the reply, or a failed call: 0.0, counted in `JUDGE_REWARD_STATS[judge_id]`."""
    critic = build_judge(judge)
    stats = JUDGE_REWARD_STATS.setdefault(critic.judge_id, Counter())
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        reference = sample.get(field)
        if reference is None:
            raise DataError(f"sample {sample.get('id', '?')!r} has no '{field}' field to judge against")
        reply = critic(prompt.format(prediction=openread_answer_text(completion),
                                     reference=openread_answer_text(str(reference))), system)
        score = critic_score(reply)
        if reply is None:
            stats["judge_failures"] += 1
        elif score is None:
            stats["parse_failures"] += 1
            log.warning("driving_judge: no ****score**** in the judge reply for sample %s: %.120s", sample.get("id"), reply)
        else:
            stats["scored"] += 1
        value = 0.0 if score is None else score
        scores.append(float(value > 0.5) if binarize else value)
    return scores


def token_overlap_judge(prompt: str, system: str | None = None) -> str:
    """An offline stand-in critic for tests and CPU runs (not OpenREAD's judge): the F1 of the lower-cased word
    overlap between the 'Predicted Answer:' and 'Reference Answer:' lines, replied as '... ****0.67****'."""
    def words(label: str) -> list[str]:
        match = re.search(rf"^{label}:(.*)$", prompt, re.MULTILINE)
        return re.findall(r"[a-z0-9]+", match.group(1).lower()) if match else []

    predicted, reference = words("Predicted Answer"), words("Reference Answer")
    common = sum((Counter(predicted) & Counter(reference)).values())
    if not predicted or not reference or common == 0:
        f1 = 0.0
    else:
        precision, recall = common / len(predicted), common / len(reference)
        f1 = 2 * precision * recall / (precision + recall)
    return f"The word overlap gives a score of ****{f1:.2f}****"
