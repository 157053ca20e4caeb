"""Evaluation harness: benchmark loaders, prompts and scorers faithful to the official scripts.

Importing `mmpost.eval` registers every built-in benchmark in `mmpost.registry.BENCHMARKS` and its
score function in `mmpost.registry.SCORERS`.
"""
from mmpost.eval.scorers import (  # noqa: F401
    drivelm, mathverse, mathvista, mmau, mvbench, refcoco, screenspot, videomme, wemath,
)
