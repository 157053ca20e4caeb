"""Driving: camera order, ego state text, waypoint parsing/formatting, and OpenREAD's trajectory reward math.

Waypoints are (x, y) metres in the ego frame at 0.5 s steps: six points cover 3 s (2 Hz), as in
OpenREAD / GPT-Driver / OmniDrive planning answers. Our synthetic task uses x = lateral (right +),
y = forward; the reward only needs the prediction and the label to share one convention.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

# DriveLM's camera order: the key order of every `image_paths` entry in DriveLM-nuScenes
# (`challenge/data/train_sample.json`), which `challenge/convert2llama.py` keeps when it lists the six images.
NUSCENES_CAMERAS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT",
)
WAYPOINTS_PER_SECOND = 2
NUM_WAYPOINTS = 6
# OpenREAD `TrajExpReward` (examples/train/grpo/plugin/plugin.py): per-second thresholds (m) and temperatures.
OPENREAD_THRESHOLDS: tuple[float, float, float] = (3.0, 5.0, 7.0)
TRAJ_EXP_TEMPERATURES: tuple[float, float, float] = (5.0, 2.0, 1.0)
OMNI_TEMPERATURES: tuple[float, float, float] = (0.7, 0.7, 0.3)
# What the official plugin substitutes for an unparsable answer: six points at (100, 100).
MALFORMED_WAYPOINT = (100.0, 100.0)

# The official coordinate pattern: "(" number-ish "," number-ish ")"; "number-ish" is [-\d.]+ so "1.2.3"
# matches and then fails float(), which makes the whole answer malformed.
_OPENREAD_COORD = re.compile(r"\(([-\d.]+),\s*([-\d.]+)\)")
# OpenREAD takes the first <answer>...</answer> on one line (re.search without DOTALL), else the stripped output.
_OPENREAD_ANSWER = re.compile(r"<answer>(.*?)</answer>")


def openread_answer_text(completion: str) -> str:
    """OpenREAD's answer extraction: the first single-line `<answer>...</answer>`'s stripped content, else the
    stripped output."""
    match = _OPENREAD_ANSWER.search(completion)
    return match.group(1).strip() if match else completion.strip()


def parse_waypoints(text: str, *, count: int = NUM_WAYPOINTS) -> np.ndarray | None:
    """All `(x, y)` pairs of `text` as a [count, 2] float array, or None unless exactly `count` parse as floats."""
    pairs = _OPENREAD_COORD.findall(text)
    if len(pairs) != count:
        return None
    try:
        return np.array([[float(x), float(y)] for x, y in pairs], dtype=np.float64)
    except ValueError:
        return None


def waypoints_or_malformed(text: str, *, count: int = NUM_WAYPOINTS) -> tuple[np.ndarray, bool]:
    """OpenREAD's rule: the parsed [count, 2] waypoints, or (100, 100) x count when malformed; plus the flag."""
    parsed = parse_waypoints(text, count=count)
    if parsed is None:
        return np.tile(np.array(MALFORMED_WAYPOINT), (count, 1)), True
    return parsed, False


def format_waypoints(points: Sequence[Sequence[float]], decimals: int = 1) -> str:
    """'(x1, y1), (x2, y2), ...' with `decimals` digits."""
    return ", ".join(f"({float(x):.{decimals}f}, {float(y):.{decimals}f})" for x, y in points)


def per_second_l2(predicted: np.ndarray, gold: np.ndarray, per_second: int = WAYPOINTS_PER_SECOND) -> np.ndarray:
    """d_s = mean L2 distance of the waypoints of second s. [T, 2], [T, 2] -> [T / per_second]."""
    predicted, gold = np.asarray(predicted, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if predicted.shape != gold.shape or predicted.ndim != 2 or predicted.shape[1] != 2:
        raise ValueError(f"waypoints must both be [T, 2]; got {predicted.shape} and {gold.shape}")
    if predicted.shape[0] % per_second:
        raise ValueError(f"{predicted.shape[0]} waypoints do not split into seconds of {per_second}")
    distances = np.sqrt(((predicted - gold) ** 2).sum(-1))
    return distances.reshape(-1, per_second).mean(-1)


def trajectory_reward_value(predicted: np.ndarray, gold: np.ndarray, *,
                            temperatures: Sequence[float] = TRAJ_EXP_TEMPERATURES,
                            thresholds: Sequence[float] = OPENREAD_THRESHOLDS) -> float:
    """OpenREAD `TrajExpReward`: r = (1/S)·Σ_s exp(−τ_s·d_s)·1[d_s ≤ θ_s] with d_s from `per_second_l2`.

    S = 3 seconds for six waypoints; τ = (5, 2, 1) (TrajExp) or (0.7, 0.7, 0.3) (the Omni variant's exp part).
    """
    seconds = per_second_l2(predicted, gold)
    if len(temperatures) != len(seconds) or len(thresholds) != len(seconds):
        raise ValueError(f"need one temperature and one threshold per second ({len(seconds)}); got "
                         f"{list(temperatures)} and {list(thresholds)}")
    total = sum(math.exp(-tau * d) * (d <= theta) for d, tau, theta in zip(seconds, temperatures, thresholds))
    return float(total / len(seconds))


def format_ego_state(ego: Mapping[str, Any] | None) -> str:
    """'Ego state: speed 5.0 m/s, yaw_rate 0.1 rad/s.' from {"speed": 5.0, ...}; '' when there is none.

    Keys ending in a unit suffix are written with it: `speed` m/s, `acceleration` m/s², `yaw_rate` rad/s,
    `heading` deg; other keys as plain numbers/strings, in the mapping's order.
    """
    if not ego:
        return ""
    units = {"speed": "m/s", "acceleration": "m/s^2", "yaw_rate": "rad/s", "heading": "deg"}
    parts = []
    for key, value in ego.items():
        text = f"{float(value):.1f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        unit = units.get(key)
        parts.append(f"{key} {text}" + (f" {unit}" if unit else ""))
    return "Ego state: " + ", ".join(parts) + "."
