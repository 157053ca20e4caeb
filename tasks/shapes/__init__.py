"""The synthetic shapes task (registered as task "shapes" and reward "shapes_accuracy"); see README.md."""
from mmpost.tasks.shapes.render import COLOURS, SHAPE_KINDS, Scene, Shape, random_scene, render
from mmpost.tasks.shapes.task import ShapesTask, shapes_accuracy

__all__ = ["COLOURS", "SHAPE_KINDS", "Scene", "Shape", "ShapesTask", "random_scene", "render", "shapes_accuracy"]
from . import warmup  # noqa: F401  (registers the warm-started zoo model)
