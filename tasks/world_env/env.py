"""The ground truth of World-Env here: a gymnasium 2-D reach environment rendered to small grayscale frames.

Dynamics are `tasks/robot_reach/sim.py`'s (a point robot, continuous displacement actions clipped to ±max_step
per dimension, workspace [0, 1]²). A frame is uint8 [S, S]: background 0, the target a disc of value 110, the
robot a disc of 255 drawn over it (one channel, so the diffusion world model generates it directly).

Success score (what the reflector learns to predict from a frame, and the GT environment's own reward):

    s(p, g) = clip(1 − max(‖p − g‖ − radius, 0) / SCORE_SCALE, 0, 1)

so s = 1 exactly when the robot is within the success radius. Rewards are relative, r_t = s_t − s_{t−1} with
s_0 = 0, so an episode's return is its final score (the same convention as the world-model env).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from mmpost.tasks.robot_reach.sim import ReachConfig, distance, expert_chunk, step

ROBOT_VALUE, TARGET_VALUE = 255, 110
SCORE_SCALE = 0.5
GYM_ID = "mmpost/WorldEnvReach-v0"


@dataclass(frozen=True)
class WorldEnvConfig:
    """Sizes of the toy: frame side in pixels, marker radius, move limit, success radius, episode limit."""

    frame_size: int = 24
    marker_radius_px: float = 2.0
    max_step: float = 0.1
    success_radius: float = 0.1
    max_steps: int = 16

    @property
    def reach(self) -> ReachConfig:
        return ReachConfig(max_step=self.max_step, success_radius=self.success_radius, image_size=self.frame_size)


def pixel_centre(point: np.ndarray, config: WorldEnvConfig) -> tuple[float, float]:
    """(row, col) of a workspace point (y up), inside a margin of one marker radius."""
    span = config.frame_size - 1 - 2 * config.marker_radius_px
    return (config.frame_size - 1 - config.marker_radius_px - float(point[1]) * span,
            config.marker_radius_px + float(point[0]) * span)


def render_frame(position: np.ndarray, target: np.ndarray, config: WorldEnvConfig) -> np.ndarray:
    """uint8 [S, S]: target disc (110), robot disc (255) on top, background 0."""
    rows, cols = np.mgrid[0 : config.frame_size, 0 : config.frame_size]
    frame = np.zeros((config.frame_size, config.frame_size), dtype=np.uint8)
    for point, value in ((target, TARGET_VALUE), (position, ROBOT_VALUE)):
        row, col = pixel_centre(point, config)
        frame[(rows - row) ** 2 + (cols - col) ** 2 <= config.marker_radius_px ** 2] = value
    return frame


def success_score(position: np.ndarray, target: np.ndarray, config: WorldEnvConfig) -> float:
    """s(p, g) in [0, 1], 1 within the success radius (module docstring)."""
    gap = max(distance(position, target) - config.success_radius, 0.0)
    return float(np.clip(1.0 - gap / SCORE_SCALE, 0.0, 1.0))


class ReachEnv(gymnasium.Env):
    """One episode of the reach task. reset(options={"initial_state": {"position": [2], "target": [2]}}).

    Observation: {"image": uint8 [S, S], "position": [2], "target": [2]}; info: `success`, `score`.
    Terminated at success, truncated after `max_steps` steps."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, config: WorldEnvConfig | None = None, **options: Any) -> None:
        self.config = config or WorldEnvConfig(**options)
        size, limit = self.config.frame_size, self.config.max_step
        self.observation_space = gymnasium.spaces.Dict({
            "image": gymnasium.spaces.Box(0, 255, (size, size), np.uint8),
            "position": gymnasium.spaces.Box(0.0, 1.0, (2,), np.float64),
            "target": gymnasium.spaces.Box(0.0, 1.0, (2,), np.float64),
        })
        self.action_space = gymnasium.spaces.Box(-limit, limit, (2,), np.float32)
        self._position = self._target = np.zeros(2)
        self._steps, self._previous = 0, 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        state = (options or {}).get("initial_state")
        if state is None:
            start, target = draw_start(random.Random(int(self.np_random.integers(2**31))), target=None)
            state = {"position": start, "target": target}
        try:
            self._position = np.asarray(state["position"], dtype=np.float64).reshape(2)
            self._target = np.asarray(state["target"], dtype=np.float64).reshape(2)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"ReachEnv.reset: initial_state needs 'position' and 'target' (2 numbers each): {error}") from None
        self._steps, self._previous = 0, 0.0
        return self._observation(), self._info()

    def step(self, action):
        self._position = step(self._position, np.asarray(action, dtype=np.float64).reshape(2), self.config.reach)
        self._steps += 1
        score = success_score(self._position, self._target, self.config)
        reward, self._previous = score - self._previous, score
        terminated = distance(self._position, self._target) <= self.config.success_radius
        truncated = not terminated and self._steps >= self.config.max_steps
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray:
        return np.repeat(render_frame(self._position, self._target, self.config)[..., None], 3, axis=-1)

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": render_frame(self._position, self._target, self.config),
                "position": self._position.copy(), "target": self._target.copy()}

    def _info(self) -> dict[str, Any]:
        return {"success": distance(self._position, self._target) <= self.config.success_radius,
                "score": success_score(self._position, self._target, self.config)}


if GYM_ID not in gymnasium.registry:  # importing twice (e.g. a reload) must not re-register
    gymnasium.register(GYM_ID, entry_point=ReachEnv, disable_env_checker=True)


# -- tasks, initial states, demonstrations, trajectories -------------------------------------------------------
# A "task" is a target location (World-Env's 5 demonstrations are per task); starts vary.
TASK_TARGETS = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))
MIN_START_DISTANCE = 0.35
HELDOUT_BUCKET = 4  # 1 in 4 start cells is held out


def start_split(start: np.ndarray) -> str:
    """'heldout' or 'train' by a hash of the start (0.05 grid), so evaluation starts are never trained on."""
    digest = hashlib.sha256(f"{start[0]:.2f}|{start[1]:.2f}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % HELDOUT_BUCKET == 0 else "train"


def draw_start(rng: random.Random, target: Any, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A start on a 0.05 grid at least MIN_START_DISTANCE from `target` (a task target when None), in `split`."""
    target = np.asarray(target if target is not None else TASK_TARGETS[rng.randrange(len(TASK_TARGETS))], dtype=np.float64)
    while True:
        start = np.array([round(rng.randrange(21) * 0.05, 2), round(rng.randrange(21) * 0.05, 2)])
        if distance(start, target) >= MIN_START_DISTANCE and (split is None or start_split(start) == split):
            return start, target


def expert_steps(start: np.ndarray, target: np.ndarray, chunk: int, config: WorldEnvConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(position, the expert's next `chunk` actions) for each policy call of an expert episode that executes whole
    chunks, until success or `max_steps`."""
    out, position = [], np.asarray(start, dtype=np.float64)
    for _ in range(0, config.max_steps, chunk):
        if distance(position, target) <= config.success_radius:
            break
        actions = expert_chunk(position, target, chunk, config.reach)
        out.append((position.copy(), actions))
        for action in actions:
            position = step(position, action, config.reach)
    return out


def collect_trajectories(count: int, length: int, config: WorldEnvConfig, *, seed: int, expert_fraction: float = 0.5) -> dict:
    """Ground-truth trajectories for the world model: {"frames": uint8 [n, L+1, S, S], "actions": float [n, L, 2],
    "positions": [n, L+1, 2], "targets": [n, 2]}. Actions are the expert's with probability `expert_fraction`
    per step, else uniform in ±max_step (so the world model sees moves in every direction)."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((count, length + 1, config.frame_size, config.frame_size), dtype=np.uint8)
    actions = np.zeros((count, length, 2))
    positions = np.zeros((count, length + 1, 2))
    targets = np.zeros((count, 2))
    for n in range(count):
        target = np.array(TASK_TARGETS[n % len(TASK_TARGETS)]) if n % 2 == 0 else rng.uniform(0, 1, 2)
        position = rng.uniform(0, 1, 2)
        targets[n], positions[n, 0] = target, position
        frames[n, 0] = render_frame(position, target, config)
        for t in range(length):
            if rng.random() < expert_fraction:
                action = expert_chunk(position, target, 1, config.reach)[0]
            else:
                action = rng.uniform(-config.max_step, config.max_step, 2)
            position = step(position, action, config.reach)
            actions[n, t], positions[n, t + 1] = action, position
            frames[n, t + 1] = render_frame(position, target, config)
    return {"frames": frames, "actions": actions, "positions": positions, "targets": targets}
