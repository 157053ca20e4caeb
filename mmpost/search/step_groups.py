"""Step-level GRPO groups from a search tree (PROPA, official `create_GRPO_train_qwen.py`).

For every expanded, non-terminal node the group is its k stored children (no fresh samples); child j gets
the label y_j = ln(1 + 10 q_j) / ln(11) with q_j = W_j / N_j (0 if unvisited). The group's GRPO advantage
(y_j - mean y) / std y is then a step-level advantage from Monte-Carlo value estimates.

`duplicate_steps` (ours, not in the official code): the k children often repeat a step text (37% of members in the
CPU benchmark's trees), and the copies carry different labels -- an unvisited copy gets 0, and visited copies get the
MC values of their own subtrees -- so one text is pushed up and down in the same group (52% of groups).
"merge" pools each text's copies into one member (N and W summed, so q = sum W / sum N); "pool" gives every copy that
pooled label but keeps all k members, so a text still weighs in the group as often as the policy sampled it; "drop"
drops the groups in which one text has two labels; "keep" (default) is the official behaviour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from mmpost.search.mcts import SearchTree

LOG_BOOST_BASE = 10.0
MIN_LABEL_SPREAD = 0.1
DUPLICATE_STEPS = ("keep", "merge", "pool", "drop")


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


def merge_duplicate_children(texts: Sequence[str], visits: Sequence[int], values: Sequence[float]
                             ) -> list[tuple[int, int, float]]:
    """Children with the same (stripped) step text pooled: [(position of the text's first copy, sum N, sum W)] in
    order of first appearance. A text's label is then computed from q = sum W / sum N (0 if no copy was visited)."""
    pooled: dict[str, list] = {}
    for position, (text, n, w) in enumerate(zip(texts, visits, values)):
        entry = pooled.setdefault(text.strip(), [position, 0, 0.0])
        entry[1] += n
        entry[2] += w
    return [(first, n, w) for first, n, w in pooled.values()]


def has_conflicting_duplicates(texts: Sequence[str], labels: Sequence[float]) -> bool:
    """True when one (stripped) step text carries two different labels in the group."""
    seen: dict[str, float] = {}
    for text, label in zip(texts, labels):
        key = text.strip()
        if key in seen and not math.isclose(seen[key], label, abs_tol=1e-9):
            return True
        seen.setdefault(key, label)
    return False


def step_groups(tree: SearchTree, *, min_spread: float = MIN_LABEL_SPREAD, a: float = LOG_BOOST_BASE,
                duplicate_steps: str = "keep") -> list[StepGroup]:
    """The tree's training groups in node order; none when the root's value is 0 (no correct rollout at all).
    `duplicate_steps`: "keep" (official), "merge", "pool" or "drop" (see the module docstring)."""
    if duplicate_steps not in DUPLICATE_STEPS:
        raise ValueError(f"step groups: duplicate_steps must be one of {DUPLICATE_STEPS}, got {duplicate_steps!r}")
    if tree.root.value <= 0:
        return []
    groups = []
    for index, node in enumerate(tree.nodes):
        if node.terminal or not node.children:
            continue
        children = tuple(node.children)
        labels = tuple(log_boost(tree.nodes[c].q, a) for c in children)
        texts = [tree.nodes[c].step for c in children]
        if duplicate_steps in ("merge", "pool"):
            pooled = merge_duplicate_children(texts, [tree.nodes[c].visits for c in children],
                                              [tree.nodes[c].value for c in children])
            text_labels = {texts[first].strip(): log_boost(w / n if n else 0.0, a) for first, n, w in pooled}
            if duplicate_steps == "merge":
                children = tuple(children[first] for first, _, _ in pooled)
                labels = tuple(text_labels[texts[first].strip()] for first, _, _ in pooled)
            else:
                labels = tuple(text_labels[text.strip()] for text in texts)
        elif duplicate_steps == "drop" and has_conflicting_duplicates(texts, labels):
            continue
        if keep_group(labels, min_spread):
            groups.append(StepGroup(index, tuple(tree.path(index)), children, labels))
    return groups


def needs_demonstration(tree: SearchTree) -> bool:
    """True when no node reached value >= 1 (official interleaved-SFT condition): the search never found a
    correct answer, so the question is trained on its reference chain instead."""
    return not any(node.value >= 1.0 for node in tree.nodes)
