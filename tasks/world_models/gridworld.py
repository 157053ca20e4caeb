"""DotGrid: the ground-truth world for the RLIR world-model recipes (a dot moving on an 8 x 8 grid).

The agent is one lit cell on a dark grid; the image is uint8 [H, W] with H = W = grid * cell (one pixel per cell
by default, so an AR world model sees 64 pixel tokens per frame). Five discrete actions move it:
0 stay, 1 up (row - 1), 2 down (row + 1), 3 left (col - 1), 4 right (col + 1).

A move into the border leaves the frame unchanged, which looks exactly like "stay"; the environment allows it
(gymnasium semantics), but `collect_trajectories` never emits one, so every generated transition identifies its
action from (frame_t, frame_t+1) alone: the inverse dynamics model can be exact on ground truth.

Splits are disjoint BY CONSTRUCTION: a trajectory (start cell + action sequence) belongs to the one split its
SHA-256 hash falls in (`trajectory_split`), and `collect_trajectories` keeps only trajectories of the requested
split. So the world model's SFT data, the IDM's data, the gold IDM's data, the RL conditioning and the held-out
conditioning never share a trajectory (the RLIR reviewers' data-leakage concern).
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import gymnasium
import numpy as np

GRID = 8
CELL = 1
ON, OFF = 255, 0
ACTION_NAMES = ("stay", "up", "down", "left", "right")
NUM_ACTIONS = len(ACTION_NAMES)
# (d_row, d_col) of each action; also the continuous-action targets of the IDM's continuous head.
ACTION_DELTAS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)

# Buckets out of SPLIT_BUCKETS: the world model gets most data, the IDMs and RL/held-out conditioning the rest.
SPLIT_BUCKETS = 20
SPLIT_SHARES = {"world_model": 8, "idm": 4, "idm_gold": 3, "rl": 3, "heldout": 2}
SPLITS = tuple(SPLIT_SHARES)


def render(position: Sequence[int], *, grid: int = GRID, cell: int = CELL) -> np.ndarray:
    """uint8 [grid*cell, grid*cell]: OFF everywhere, ON over the agent's cell (row, col)."""
    row, col = int(position[0]), int(position[1])
    if not (0 <= row < grid and 0 <= col < grid):
        raise ValueError(f"position {(row, col)} is outside the {grid} x {grid} grid")
    frame = np.full((grid * cell, grid * cell), OFF, dtype=np.uint8)
    frame[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = ON
    return frame


def move(position: Sequence[int], action: int, *, grid: int = GRID) -> tuple[int, int]:
    """The next cell; a move off the grid stays put (the env's wall rule)."""
    if not 0 <= int(action) < NUM_ACTIONS:
        raise ValueError(f"action {action} is not one of 0..{NUM_ACTIONS - 1} ({', '.join(ACTION_NAMES)})")
    row, col = int(position[0]) + ACTION_DELTAS[action][0], int(position[1]) + ACTION_DELTAS[action][1]
    if not (0 <= row < grid and 0 <= col < grid):
        return int(position[0]), int(position[1])
    return int(row), int(col)


def unambiguous_actions(position: Sequence[int], *, grid: int = GRID) -> list[int]:
    """Actions whose outcome identifies them: stay, and every move that does not hit the border."""
    return [a for a in range(NUM_ACTIONS) if a == 0 or move(position, a, grid=grid) != (int(position[0]), int(position[1]))]


def trajectory_split(start: Sequence[int], actions: Sequence[int]) -> str:
    """The split a trajectory belongs to: its SHA-256 bucket (out of SPLIT_BUCKETS) mapped through SPLIT_SHARES."""
    key = f"{int(start[0])},{int(start[1])}|" + "".join(str(int(a)) for a in actions)
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % SPLIT_BUCKETS
    for split, share in SPLIT_SHARES.items():
        if bucket < share:
            return split
        bucket -= share
    raise AssertionError("SPLIT_SHARES must sum to SPLIT_BUCKETS")


class DotGridEnv(gymnasium.Env):
    """A gymnasium env: observation uint8 [H, W], Discrete(5) actions, reward 0 (RLIR rewards come from the IDM).

    `reset(options={"position": (row, col)})` places the agent; otherwise the start cell is uniform.
    `info` holds the agent's `position` and whether the last action `moved` it.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, *, grid: int = GRID, cell: int = CELL, max_steps: int = 64) -> None:
        super().__init__()
        self.grid, self.cell, self.max_steps = grid, cell, max_steps
        size = grid * cell
        self.observation_space = gymnasium.spaces.Box(low=0, high=255, shape=(size, size), dtype=np.uint8)
        self.action_space = gymnasium.spaces.Discrete(NUM_ACTIONS)
        self.position = (0, 0)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "position" in options:
            position = tuple(int(v) for v in options["position"])
        else:
            position = tuple(int(v) for v in self.np_random.integers(0, self.grid, size=2))
        render(position, grid=self.grid, cell=self.cell)  # validates the position
        self.position, self.steps = position, 0
        return self._observation(), {"position": self.position}

    def step(self, action):
        previous = self.position
        self.position = move(previous, int(action), grid=self.grid)
        self.steps += 1
        info = {"position": self.position, "moved": self.position != previous}
        return self._observation(), 0.0, False, self.steps >= self.max_steps, info

    def render(self) -> np.ndarray:
        return np.repeat(self._observation()[..., None], 3, axis=-1)

    def _observation(self) -> np.ndarray:
        return render(self.position, grid=self.grid, cell=self.cell)


def collect_trajectories(n: int, length: int, *, seed: int, split: str, grid: int = GRID, cell: int = CELL,
                         max_tries_per_trajectory: int = 10_000) -> dict[str, np.ndarray]:
    """`n` ground-truth trajectories of `length` unambiguous actions, all belonging to `split`.

    Returns {"frames": uint8 [n, length+1, H, W], "actions": int64 [n, length], "starts": int64 [n, 2]}.
    Actions are drawn uniformly from `unambiguous_actions`; a drawn trajectory outside `split` is redrawn
    (rejection by hash keeps the splits disjoint). Deterministic in (seed, split, n, length).
    """
    if split not in SPLIT_SHARES:
        raise ValueError(f"collect_trajectories: unknown split {split!r}; expected one of {list(SPLITS)}")
    if n < 0 or length < 1:
        raise ValueError(f"collect_trajectories: need n >= 0 and length >= 1, got n={n}, length={length}")
    rng = np.random.default_rng([seed, SPLITS.index(split), length])
    env = DotGridEnv(grid=grid, cell=cell, max_steps=length)
    size = grid * cell
    frames = np.zeros((n, length + 1, size, size), dtype=np.uint8)
    actions = np.zeros((n, length), dtype=np.int64)
    starts = np.zeros((n, 2), dtype=np.int64)
    for i in range(n):
        for _ in range(max_tries_per_trajectory):
            start = (int(rng.integers(grid)), int(rng.integers(grid)))
            position, chosen = start, []
            for _ in range(length):
                options = unambiguous_actions(position, grid=grid)
                chosen.append(int(options[rng.integers(len(options))]))
                position = move(position, chosen[-1], grid=grid)
            if trajectory_split(start, chosen) == split:
                break
        else:
            raise RuntimeError(f"collect_trajectories: no {split!r} trajectory in {max_tries_per_trajectory} draws")
        observation, _ = env.reset(options={"position": start})
        frames[i, 0] = observation
        for t, action in enumerate(chosen):
            observation, *_ = env.step(action)
            frames[i, t + 1] = observation
        actions[i], starts[i] = chosen, start
    return {"frames": frames, "actions": actions, "starts": starts}


def conditioning_samples(task: str, split: str, *, train_split: str, sizes: dict[str, int], context: int, frames: int,
                         seed: int, size: int | None = None) -> list[dict]:
    """RLIR conditioning rows shared by the world-model tasks: `context` ground-truth frames, the `frames` actions that
    follow, and the true next frames (for SFT targets and the gold pixel metric).

    `split`: "train" (the task's `train_split`), "heldout"/"test", or any data split by name. Rows:
    {id, context_frames uint8 [context, H, W], actions list[int] (len frames), target_frames uint8 [frames, H, W]}.
    """
    from mmpost.types import DataError

    if split == "train":
        data_split, kind = train_split, "train"
    elif split in ("heldout", "test"):
        data_split, kind = "heldout", "heldout"
    elif split in SPLITS:
        data_split, kind = split, "train"
    else:
        raise DataError(f"{task}: unknown split {split!r}; expected train, heldout or one of {list(SPLITS)}")
    size = sizes[kind] if size is None else size
    data = collect_trajectories(size, context - 1 + frames, seed=seed, split=data_split)
    return [{
        "id": f"{task}-{data_split}-{seed}-{i:05d}",
        "context_frames": data["frames"][i, :context],
        "actions": data["actions"][i, context - 1 :].tolist(),
        "target_frames": data["frames"][i, context:],
    } for i in range(size)]
