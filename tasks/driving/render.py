"""Top-down driving scenes: a road of constant curvature, the ego car at the bottom heading up, drawn with PIL.

Ego frame: x lateral (metres, right +), y forward (metres), origin at the ego car. The ego follows the road's
centre line at constant speed, so its waypoint after t seconds is the arc point at s = v·t:
    κ = 0:  (0, s)        κ ≠ 0:  ((1 − cos κs)/κ, sin(κs)/κ)        (κ > 0 bends right)
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SPEED_RANGE = (2.0, 10.0)  # m/s, one decimal
CURVATURE_RANGE = (-0.06, 0.06)  # 1/m, steps of 0.005
CURVATURE_STEP = 0.005
WAYPOINT_TIMES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # seconds: six waypoints at 2 Hz
ROAD_WIDTH_M = 7.0
GRASS = (70, 130, 60)
ROAD = (90, 90, 95)
MARKING = (240, 240, 240)
EGO = (220, 40, 40)


@dataclass(frozen=True)
class DrivingScene:
    speed: float  # m/s
    curvature: float  # 1/m, > 0 bends right
    image_size: int = 112
    pixels_per_metre: float = 2.5

    def key(self) -> str:
        return f"{self.speed:.1f}|{self.curvature:.3f}|{self.image_size}|{self.pixels_per_metre}"


def arc_point(curvature: float, distance: float) -> tuple[float, float]:
    """(x, y) of the centre-line point `distance` metres ahead along an arc of `curvature`."""
    if abs(curvature) < 1e-9:
        return 0.0, distance
    return (1.0 - math.cos(curvature * distance)) / curvature, math.sin(curvature * distance) / curvature


def future_waypoints(scene: DrivingScene) -> list[tuple[float, float]]:
    """The six ground-truth waypoints (x, y) at `WAYPOINT_TIMES`, rounded to 0.1 m as they are written."""
    return [tuple(round(c, 1) + 0.0 for c in arc_point(scene.curvature, scene.speed * t)) for t in WAYPOINT_TIMES]  # + 0.0: no "-0.0"


def random_scene(rng: random.Random, *, image_size: int = 112) -> DrivingScene:
    speed = round(rng.uniform(*SPEED_RANGE), 1)
    steps = round((CURVATURE_RANGE[1] - CURVATURE_RANGE[0]) / CURVATURE_STEP)
    curvature = round(CURVATURE_RANGE[0] + CURVATURE_STEP * rng.randint(0, steps), 3)
    return DrivingScene(speed=speed, curvature=curvature, image_size=image_size)


def render_scene(scene: DrivingScene) -> Image.Image:
    """Grass, the road band along the arc, a dashed centre line, and the ego car (with a heading arrow)."""
    size, scale = scene.image_size, scene.pixels_per_metre
    origin = (size / 2.0, size * 0.85)  # the ego car's pixel position

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return origin[0] + x * scale, origin[1] - y * scale

    image = Image.new("RGB", (size, size), GRASS)
    draw = ImageDraw.Draw(image)
    reach = size / scale * 1.5
    centre = [to_pixel(*arc_point(scene.curvature, s / 2.0)) for s in range(int(-20 * 2), int(reach * 2))]
    draw.line(centre, fill=ROAD, width=max(3, int(ROAD_WIDTH_M * scale)), joint="curve")
    for start in range(0, len(centre) - 4, 8):  # dashes of 2 m every 4 m
        draw.line(centre[start : start + 4], fill=MARKING, width=1)
    cx, cy = origin
    half_w, half_l = 1.0 * scale, 2.2 * scale
    draw.rectangle((cx - half_w, cy - half_l, cx + half_w, cy + half_l), fill=EGO)
    draw.polygon([(cx, cy - half_l - 3), (cx - 2, cy - half_l), (cx + 2, cy - half_l)], fill=EGO)  # heading
    return image
