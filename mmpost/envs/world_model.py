"""A learned world model as an environment (RLinf `BaseWorldEnv.chunk_step`, World-Env's simulator + reflector).

A frozen action-conditioned frame generator imagines the next C frames from a sliding window of the current
frames and a chunk of C actions; a reward model (World-Env's VLM reflector, RLinf's ResNet reward model) scores
every generated frame with a success score s_t in [0, 1]; the episode terminates at the first step whose score
reaches `threshold` (World-Env's termination prediction) and is truncated after `max_steps` steps.

Rewards: `relative` (RLinf `use_rel_reward`) gives r_t = s_t − s_{t−1} with s_0 = 0, so an episode's rewards sum
to its final score; `absolute` gives r_t = s_t. Auto-reset as `mmpost.envs.base` documents: the episode restarts
from its own initial frames.

Differences from RLinf's WanEnv, on purpose: termination is placed on the exact step whose score crosses the
threshold (RLinf marks the last step of the chunk), and the steps after it are ignored rather than rewarded.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from mmpost.envs.base import EpisodeStats, StepResult, check_action_chunks
from mmpost.registry import ENVIRONMENTS

FrameGenerator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(context frames [B, W, *F], actions [B, C, A]) -> next frames [B, C, *F]."""
FrameScorer = Callable[[torch.Tensor, Sequence[Any]], torch.Tensor]
"""(frames [B, C, *F], initial states of the B episodes) -> success scores [B, C] in [0, 1]."""

# relative: s_t - s_{t-1} (RLinf's use_rel_reward; the episode's return is its last score); absolute: s_t;
# success_call: 1 at the step the reward model's score reaches the threshold (the episode then ends), else 0, so the
# return is the 0/1 success call (ours, not World-Env's or RLinf's, which give the continuous score)
REWARD_MODES = ("relative", "absolute", "success_call")


def step_reward(mode: str, score: float, previous: float, threshold: float) -> float:
    """The reward of one env step under `mode` (REWARD_MODES) from its score and the episode's previous score."""
    if mode == "relative":
        return score - previous
    if mode == "success_call":
        return float(score >= threshold)
    return score


def initial_frames(state: Any, where: str) -> torch.Tensor:
    """The frames [K, *F] an episode starts from: `state` itself (a tensor) or `state["frames"]`."""
    frames = state.get("frames") if isinstance(state, dict) else state
    if not isinstance(frames, torch.Tensor) or frames.dim() < 2 or frames.shape[0] < 1:
        raise ValueError(f"{where}: an initial state must be a tensor of frames [K, *frame_shape] (K >= 1) or a dict "
                         f"with such a tensor under 'frames'; got {type(frames).__name__}")
    return frames.float()


@ENVIRONMENTS.register("world_model")
class WorldModelEnv:
    """B imagined episodes stepped by a frozen frame generator and scored by a reward model.

    Observations are dicts: `frame` [*F] (the latest frame), `frames` [W, *F] (the conditioning window),
    `state` (the episode's initial state, e.g. its instruction) and `step` (steps taken in the episode).
    """

    def __init__(self, generator: FrameGenerator, reward_model: FrameScorer, *, chunk: int, threshold: float,
                 max_steps: int, reward_mode: str = "relative", context_frames: int = 1,
                 keep_first_frame: bool = False) -> None:
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"WorldModelEnv: reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if chunk < 1 or max_steps < 1 or context_frames < 1:
            raise ValueError(f"WorldModelEnv: chunk ({chunk}), max_steps ({max_steps}) and context_frames "
                             f"({context_frames}) must be >= 1")
        if keep_first_frame and context_frames < 2:
            raise ValueError("WorldModelEnv: keep_first_frame needs context_frames >= 2 (the first frame + recent ones)")
        self.generator, self.reward_model = generator, reward_model
        self.chunk, self.threshold, self.max_steps = chunk, float(threshold), max_steps
        self.reward_mode, self.context_frames, self.keep_first_frame = reward_mode, context_frames, keep_first_frame
        self._states: list[Any] = []

    # -- episodes -----------------------------------------------------------------------------------
    def reset(self, initial_states: Sequence[Any], *, seed: int | None = None) -> list[dict[str, Any]]:
        """Start one episode per initial state (`seed` is unused: the generator runs deterministically)."""
        if not initial_states:
            raise ValueError("WorldModelEnv.reset: no initial states")
        self._states = list(initial_states)
        starts = [initial_frames(s, f"WorldModelEnv.reset: initial state {b}") for b, s in enumerate(self._states)]
        shapes = {tuple(f.shape[1:]) for f in starts}
        if len(shapes) > 1:
            raise ValueError(f"WorldModelEnv.reset: initial frames of different shapes {sorted(shapes)}")
        self._starts = starts
        self._first = torch.stack([f[0] for f in starts])
        self._recent = torch.stack([self._start_window(f) for f in starts])
        batch = len(starts)
        self._steps = [0] * batch
        self._previous_score = [0.0] * batch
        self._return = [0.0] * batch
        return [self._observation(b) for b in range(batch)]

    def _recent_width(self) -> int:
        return self.context_frames - 1 if self.keep_first_frame else self.context_frames

    def _start_window(self, frames: torch.Tensor) -> torch.Tensor:
        """The last W frames, left-padded by repeating the earliest (a fresh episode has one frame of history)."""
        width = self._recent_width()
        frames = frames[-width:]
        pad = frames[:1].expand(width - frames.shape[0], *frames.shape[1:])
        return torch.cat([pad, frames], dim=0)

    def _window(self) -> torch.Tensor:
        """Conditioning [B, W, *F]: the recent frames, after the first frame when `keep_first_frame`."""
        if self.keep_first_frame:
            return torch.cat([self._first[:, None], self._recent], dim=1)
        return self._recent

    def _observation(self, b: int) -> dict[str, Any]:
        window = self._window()[b].clone()  # a copy: the live window is updated in place
        return {"frame": window[-1], "frames": window, "state": self._states[b], "step": self._steps[b]}

    def _reset_one(self, b: int) -> None:
        self._first[b] = self._starts[b][0]
        self._recent[b] = self._start_window(self._starts[b])
        self._steps[b], self._previous_score[b], self._return[b] = 0, 0.0, 0.0

    # -- stepping -----------------------------------------------------------------------------------
    @torch.no_grad()
    def chunk_step(self, action_chunks: Any, active: Sequence[int] | None = None) -> StepResult:
        """Imagine C frames per episode, score them, and apply termination, truncation and auto-reset.

        `active` (episode indices; default all) steps only those episodes: the others are left as they are
        (rewards 0, flags False, no info), which saves generating and scoring frames a caller no longer reads
        (`run_episodes` stops reading an episode once it ended). The active episodes' results are the same as in a
        full step when the generator and the reward model treat rows independently (World-Env's do)."""
        batch = len(self._states)
        if not batch:
            raise RuntimeError("WorldModelEnv.chunk_step before reset")
        actions = check_action_chunks(action_chunks, batch, self.chunk, "WorldModelEnv.chunk_step")
        rows = list(range(batch)) if active is None else sorted({int(b) for b in active})
        if any(not 0 <= b < batch for b in rows):
            raise ValueError(f"WorldModelEnv.chunk_step: active episodes {rows} outside 0..{batch - 1}")
        rewards = torch.zeros(batch, self.chunk)
        terminated = torch.zeros(batch, self.chunk, dtype=torch.bool)
        truncated = torch.zeros(batch, self.chunk, dtype=torch.bool)
        infos: list[dict[str, Any]] = [{} for _ in range(batch)]
        if not rows:
            return StepResult([self._observation(b) for b in range(batch)], rewards, terminated, truncated, infos)
        frames = self.generator(self._window()[rows], actions[rows])
        expected = (len(rows), self.chunk, *self._first.shape[1:])
        if tuple(frames.shape) != expected:
            raise ValueError(f"WorldModelEnv: the generator returned frames of shape {list(frames.shape)}, expected {list(expected)}")
        scores = torch.as_tensor(self.reward_model(frames, [self._states[b] for b in rows]), dtype=torch.float32)
        if tuple(scores.shape) != (len(rows), self.chunk):
            raise ValueError(f"WorldModelEnv: the reward model returned scores of shape {list(scores.shape)}, "
                             f"expected {[len(rows), self.chunk]}")
        for k, b in enumerate(rows):
            for c in range(self.chunk):
                score = float(scores[k, c])
                rewards[b, c] = step_reward(self.reward_mode, score, self._previous_score[b], self.threshold)
                self._previous_score[b] = score
                self._return[b] += float(rewards[b, c])
                self._steps[b] += 1
                self._recent[b] = torch.cat([self._recent[b, 1:], frames[k, c : c + 1].float()], dim=0)
                terminated[b, c] = score >= self.threshold
                truncated[b, c] = not terminated[b, c] and self._steps[b] >= self.max_steps
                if terminated[b, c] or truncated[b, c]:
                    infos[b] = {"final_observation": self._observation(b), "scores": scores[k, : c + 1].clone(),
                                "episode": EpisodeStats(self._return[b], self._steps[b], bool(terminated[b, c]), score)}
                    self._reset_one(b)
                    break
        return StepResult([self._observation(b) for b in range(batch)], rewards, terminated, truncated, infos)
