"""Step-level GRPO groups from a search tree (PROPA, official `create_GRPO_train_qwen.py`).

For every expanded, non-terminal node the group is its k stored children (no fresh samples); child j gets
the label y_j = ln(1 + 10 q_j) / ln(11) with q_j = W_j / N_j (0 if unvisited). The group's GRPO advantage
(y_j - mean y) / std y is then a step-level advantage from Monte-Carlo value estimates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from mmpost.search.mcts import SearchTree

LOG_BOOST_BASE = 10.0
MIN_LABEL_SPREAD = 0.1


def log_boost(q: float, a: float = LOG_BOOST_BASE) -> float:
    """y = ln(1 + a q) / ln(1 + a) for q in (0, 1); 0 at q <= 0 and 1 at q >= 1 (official `log_boost`)."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    return math.log(1.0 + a * q) / math.log(1.0 + a)


def keep_group(labels: Sequence[float], min_spread: float = MIN_LABEL_SPREAD) -> bool:
    """False when all labels are 0, all are 1, or max - min < min_spread (no step-level signal)."""
    if not labels:
        return False
    if all(y == 0 for y in labels) or all(y == 1 for y in labels):
        return False
    return max(labels) - min(labels) >= min_spread


@dataclass(frozen=True)
class StepGroup:
    """The children of `node`: the prompt is the path root..node, the completions its stored child steps."""

    node: int
    steps: tuple[str, ...]  # the path so far (the prompt's "Existing steps")
    children: tuple[int, ...]
    labels: tuple[float, ...]


def step_groups(tree: SearchTree, *, min_spread: float = MIN_LABEL_SPREAD, a: float = LOG_BOOST_BASE) -> list[StepGroup]:
    """The tree's training groups in node order; none when the root's value is 0 (no correct rollout at all)."""
    if tree.root.value <= 0:
        return []
    groups = []
    for index, node in enumerate(tree.nodes):
        if node.terminal or not node.children:
            continue
        labels = tuple(log_boost(tree.nodes[c].q, a) for c in node.children)
        if keep_group(labels, min_spread):
            groups.append(StepGroup(index, tuple(tree.path(index)), tuple(node.children), labels))
    return groups


def needs_demonstration(tree: SearchTree) -> bool:
    """True when no node reached value >= 1 (official interleaved-SFT condition): the search never found a
    correct answer, so the question is trained on its reference chain instead."""
    return not any(node.value >= 1.0 for node in tree.nodes)
