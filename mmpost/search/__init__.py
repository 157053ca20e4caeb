"""Step-wise search for reasoning policies: MCTS over steps, step-level GRPO groups, process reward models.

Importing this package registers the experience sources "propa", "step_sft", "step_outcome_grpo" and the
reward "propa_step_label" (for the registries' built-in lists: `mmpost.search`).
"""
from mmpost.search.mcts import (
    MCTSConfig, Node, SearchTree, StepProposer, backpropagate, is_correct_step, is_terminal_step, rollout_evaluator,
    run_mcts, select_leaf, step_messages, uct_score,
)
from mmpost.search.step_groups import StepGroup, keep_group, log_boost, needs_demonstration, step_groups
from mmpost.search import source  # noqa: F401  (registers the sources and the reward)

__all__ = [
    "MCTSConfig", "Node", "SearchTree", "StepProposer", "StepGroup", "backpropagate", "is_correct_step",
    "is_terminal_step", "keep_group", "log_boost", "needs_demonstration", "rollout_evaluator", "run_mcts",
    "select_leaf", "step_groups", "step_messages", "uct_score",
]
