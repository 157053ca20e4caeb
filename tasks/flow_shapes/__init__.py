"""Flow-GRPO's CPU test bed: task "flow_grpo_shapes", rewards flow_shapes_contrast / flow_shapes_hit, zoo
"tiny-flow-generator-shapes"; see README.md."""
from mmpost.tasks.flow_shapes.task import FlowShapesTask, flow_shapes_contrast, flow_shapes_hit, quadrant_contrast, quadrant_means
from mmpost.tasks.flow_shapes.warmup import blob_images, build_tiny_flow_generator_shapes

__all__ = ["FlowShapesTask", "blob_images", "build_tiny_flow_generator_shapes", "flow_shapes_contrast", "flow_shapes_hit",
           "quadrant_contrast", "quadrant_means"]
