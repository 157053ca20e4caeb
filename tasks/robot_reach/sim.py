"""A 2-D point robot reaching a target: a pure-numpy simulator, a scripted expert and a renderer.

State: robot position p ∈ [0, 1]², target g ∈ [0, 1]². Action a ∈ R² is a displacement; each step applies
clip(a, −max_step, max_step) per dimension, then clips p to the workspace. Success: ‖p − g‖ ≤ success_radius.
The expert moves straight at the target: a = clip(g − p, −max_step, max_step).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND = (245, 245, 245)
ROBOT_COLOUR = (40, 80, 220)
TARGET_COLOUR = (220, 40, 40)


@dataclass(frozen=True)
class ReachConfig:
    max_step: float = 0.1
    success_radius: float = 0.05
    image_size: int = 112
    marker_radius_px: int = 5


def step(position: np.ndarray, action: np.ndarray, config: ReachConfig) -> np.ndarray:
    """p' = clip(p + clip(a, ±max_step), 0, 1). [2], [2] -> [2]."""
    move = np.clip(np.asarray(action, dtype=np.float64), -config.max_step, config.max_step)
    return np.clip(np.asarray(position, dtype=np.float64) + move, 0.0, 1.0)


def rollout(position: np.ndarray, actions: np.ndarray, config: ReachConfig) -> np.ndarray:
    """Positions after each action of a chunk [K, 2] -> [K, 2]."""
    positions, current = [], np.asarray(position, dtype=np.float64)
    for action in np.asarray(actions, dtype=np.float64).reshape(-1, 2):
        current = step(current, action, config)
        positions.append(current)
    return np.array(positions).reshape(-1, 2)


def expert_action(position: np.ndarray, target: np.ndarray, config: ReachConfig) -> np.ndarray:
    """The scripted expert: head straight for the target, at most `max_step` per dimension."""
    return np.clip(np.asarray(target) - np.asarray(position), -config.max_step, config.max_step)


def expert_chunk(position: np.ndarray, target: np.ndarray, chunk: int, config: ReachConfig) -> np.ndarray:
    """The expert's next `chunk` actions [chunk, 2], executed in the simulator one after another."""
    actions, current = [], np.asarray(position, dtype=np.float64)
    for _ in range(chunk):
        action = expert_action(current, target, config)
        actions.append(action)
        current = step(current, action, config)
    return np.array(actions)


def distance(position: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(position, dtype=np.float64) - np.asarray(target, dtype=np.float64)))


def render(position: np.ndarray, target: np.ndarray, config: ReachConfig) -> Image.Image:
    """A top view: the target as a red disc, the robot as a blue disc (y up)."""
    size, radius = config.image_size, config.marker_radius_px
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for point, colour in ((target, TARGET_COLOUR), (position, ROBOT_COLOUR)):
        x = radius + float(point[0]) * (size - 1 - 2 * radius)
        y = size - 1 - radius - float(point[1]) * (size - 1 - 2 * radius)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    return image
