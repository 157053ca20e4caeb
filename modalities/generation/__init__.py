"""The generation modality: conditioning-only inputs (class ids, action sequences, context frames) for generators
trained as denoising policies, and the tiny class-conditioned flow generator (zoo "tiny-flow-generator")."""
from .adapter import GenerationModality
from .processing import conditioning_tensors, to_unit_range
from .tiny import build_tiny_flow_generator, tiny_class_conditioned_unet

__all__ = ["GenerationModality", "build_tiny_flow_generator", "conditioning_tensors", "tiny_class_conditioned_unet",
           "to_unit_range"]
