"""The synthetic `robot_reach` task: (frame, proprioception) -> the next chunk of K actions as action tokens.

Demonstrations come from the scripted expert in the task's own simulator (`sim.py`). Each step of an expert
episode is one sample; its target completion is the expert's next K actions, binned per dimension over the
train split's action statistics (OpenVLA style) and written as `<act_i>` tokens (the tiny VLA's vocabulary).

Rewards (the completion's chunk is de-tokenised to bin centres and executed in the simulator from the sample's
state):
- `robot_reach_progress` (dense, the default and the accuracy reward): the distance gained towards the target,
  relative to what the expert's chunk gains, clipped to [−1, 1]: (d₀ − d_K) / (d₀ − d_K^expert). 1 = as good
  as the expert, 0 = no progress (also a malformed chunk), −1 = moving away as fast. With `threshold`, it is
  1[progress ≥ threshold] instead.
- `robot_reach_success`: 1.0 if the executed chunk ends within the success radius.
- `robot_action_format`: 1.0 if the completion is exactly K·D action tokens and nothing else.
"""
from __future__ import annotations

import hashlib
import random
import re
from typing import Sequence

import numpy as np

from mmpost.modalities.robot.adapter import format_proprio
from mmpost.modalities.robot.processing import DEFAULT_BINS, ActionStats, ActionTokenizer, action_token_names, bin_centres, discretize, parse_action_bins
from mmpost.registry import REWARDS, TASKS
from mmpost.tasks.common import canonical_split
from mmpost.tasks.robot_reach.sim import ReachConfig, distance, expert_chunk, render, rollout, step
from mmpost.types import DataError, Message, Sample

ACTION_DIMS = 2
MIN_START_DISTANCE = 0.3
HELDOUT_FRACTION_DENOMINATOR = 8
STATS_EPISODES = 64
PROMPT = "The blue dot is the robot and the red dot is the target. {state} What are the next {k} actions?"
_ONLY_ACTION_TOKENS = re.compile(r"(?:\s*<act_\d+>)+\s*")


def episode_split(start: Sequence[float], target: Sequence[float]) -> str:
    key = "|".join(f"{v:.2f}" for v in (*start, *target))
    digest = hashlib.sha256(key.encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_FRACTION_DENOMINATOR == 0 else "train"


def draw_episode(rng: random.Random, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A (start, target) pair at least MIN_START_DISTANCE apart, on a 0.01 grid, in `split`'s part of space."""
    while True:
        start = np.array([round(rng.random(), 2), round(rng.random(), 2)])
        target = np.array([round(rng.random(), 2), round(rng.random(), 2)])
        if distance(start, target) >= MIN_START_DISTANCE and episode_split(start, target) == split:
            return start, target


def expert_episode(start: np.ndarray, target: np.ndarray, chunk: int, config: ReachConfig, max_steps: int = 30):
    """(position, expert chunk) for every step of an expert episode until success."""
    steps, position = [], start.astype(np.float64)
    for _ in range(max_steps):
        if distance(position, target) <= config.success_radius:
            break
        actions = expert_chunk(position, target, chunk, config)
        steps.append((position.copy(), actions))
        position = step(position, actions[0], config)
    return steps


@TASKS.register("robot_reach")
class RobotReachTask:
    """Options: `chunk` (K actions per answer), `n_bins` (per-dimension bins), `max_step`, `success_radius`,
    `image_size`, sizes and `seed`."""

    name = "robot_reach"
    modality = "robot"
    accuracy_reward = "robot_reach_progress"

    def __init__(self, *, seed: int = 0, chunk: int = 4, n_bins: int = DEFAULT_BINS, max_step: float = 0.1,
                 success_radius: float = 0.05, image_size: int = 112, train_size: int = 512, heldout_size: int = 64) -> None:
        if chunk < 1:
            raise ValueError(f"robot_reach: chunk must be >= 1, got {chunk}")
        self.seed, self.chunk, self.n_bins = seed, chunk, n_bins
        self.config = ReachConfig(max_step=max_step, success_radius=success_radius, image_size=image_size)
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [{"name": "robot_reach_progress", "weight": 1.0},
                                {"name": "robot_action_format", "weight": 0.2}]
        self._stats: ActionStats | None = None

    def action_stats(self) -> ActionStats:
        """q01/q99 of the expert actions of the first STATS_EPISODES train episodes (fixed by the seed)."""
        if self._stats is None:
            actions = []
            for episode in range(STATS_EPISODES):
                start, target = draw_episode(random.Random(f"mmpost.robot_reach:{self.seed}:train:{episode}"), "train")
                actions += [chunk for _, chunk in expert_episode(start, target, self.chunk, self.config)]
            self._stats = ActionStats.from_actions(np.concatenate(actions), quantiles=(0.01, 0.99))
        return self._stats

    def load(self, split: str, *, size: int | None = None) -> list[Sample]:
        split = canonical_split("robot_reach", split)
        size = self.sizes[split] if size is None else size
        stats = self.action_stats()
        names = action_token_names(self.n_bins)
        samples: list[Sample] = []
        episode = 0
        while len(samples) < size:
            start, target = draw_episode(random.Random(f"mmpost.robot_reach:{self.seed}:{split}:{episode}"), split)
            for t, (position, actions) in enumerate(expert_episode(start, target, self.chunk, self.config)):
                if len(samples) == size:
                    break
                bins, _ = discretize(actions, stats, self.n_bins)
                samples.append({
                    "id": f"robot_reach-{split}-{self.seed}-{episode:04d}-{t:02d}",
                    "images": [render(position, target, self.config)],
                    "proprio": [float(v) for v in position],
                    "target": [float(v) for v in target],
                    "actions": actions.tolist(),
                    "action_stats": {**stats.to_dict(), "n_bins": self.n_bins},
                    "reach": {"max_step": self.config.max_step, "success_radius": self.config.success_radius},
                    "answer": "".join(names[i] for i in bins.reshape(-1)),
                })
            episode += 1
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        state = format_proprio(sample["proprio"], names=["x", "y"])
        text = PROMPT.format(state=state, k=len(sample["actions"]))
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    def target(self, sample: Sample) -> str:
        return sample["answer"]

    def allowed_token_ids(self, tokenizer) -> list[int]:
        """The ids of `<act_0>` … `<act_{n_bins−1}>`: the only tokens the policy may sample (the engine's
        `TokenPolicy` suppresses every other id except EOS, at sampling and re-scoring alike).

        Raises ValueError naming a missing action token when the tokenizer was not built with them
        (use the `tiny-vla-qwen2.5-vl` zoo entry or `add_action_tokens`)."""
        return ActionTokenizer.added(self.action_stats(), tokenizer, self.n_bins).allowed_token_ids()


# ---- rewards -------------------------------------------------------------------------------------
def _reach_setup(sample: Sample):
    try:
        stats = ActionStats.from_dict(sample["action_stats"])
        n_bins = int(sample["action_stats"]["n_bins"])
        config = ReachConfig(max_step=float(sample["reach"]["max_step"]), success_radius=float(sample["reach"]["success_radius"]))
        expert = np.asarray(sample["actions"], dtype=np.float64)
        return stats, n_bins, config, expert, np.asarray(sample["proprio"], float), np.asarray(sample["target"], float)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"sample {sample.get('id', '?')!r}: robot_reach rewards need action_stats, reach, actions, "
                        f"proprio and target ({type(error).__name__}: {error})") from None


def executed_chunk(completion: str, sample: Sample):
    """(final position after the completion's chunk or None if malformed, setup tuple)."""
    setup = _reach_setup(sample)
    stats, n_bins, config, expert, position, _ = setup
    bins = parse_action_bins(completion)
    if len(bins) != expert.size or any(b >= n_bins for b in bins):
        return None, setup
    actions = bin_centres(np.array(bins).reshape(expert.shape), stats, n_bins)
    return rollout(position, actions, config)[-1], setup


def reach_progress(start: np.ndarray, final: np.ndarray, expert_final: np.ndarray, target: np.ndarray) -> float:
    """(d₀ − d_K) / (d₀ − d_K^expert), clipped to [−1, 1]."""
    gain = distance(start, target) - distance(final, target)
    expert_gain = distance(start, target) - distance(expert_final, target)
    return float(np.clip(gain / max(expert_gain, 1e-9), -1.0, 1.0))


@REWARDS.register("robot_reach_progress")
def robot_reach_progress(completions: Sequence[str], samples: Sequence[Sample], *, threshold: float | None = None) -> list[float]:
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        final, (stats, n_bins, config, expert, position, target) = executed_chunk(completion, sample)
        if final is None:
            scores.append(0.0)
            continue
        progress = reach_progress(position, final, rollout(position, expert, config)[-1], target)
        scores.append(progress if threshold is None else float(progress >= threshold))
    return scores


@REWARDS.register("robot_reach_success")
def robot_reach_success(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        final, (_, _, config, _, _, target) = executed_chunk(completion, sample)
        scores.append(float(final is not None and distance(final, target) <= config.success_radius))
    return scores


@REWARDS.register("robot_action_format")
def robot_action_format(completions: Sequence[str], samples: Sequence[Sample]) -> list[float]:
    scores = []
    for completion, sample in zip(completions, samples, strict=True):
        expected = np.asarray(sample["actions"]).size
        ok = _ONLY_ACTION_TOKENS.fullmatch(completion) is not None and len(parse_action_bins(completion)) == expected
        scores.append(float(ok))
    return scores
