"""Rewards: `fn(completions, samples, **args) -> list[float | None]`, registered in `REWARDS` by name.

Importing this package registers the built-ins (`answer_tag_format`, `think_answer_format`,
`exact_match`, `choice_match`, `math_match`, `box_iou`, `point_in_box`); `parsing` holds the pure
answer-extraction helpers they and the evaluation scorers share.
"""
from mmpost.rewards import builtin, parsing
from mmpost.rewards.builtin import combine_rewards

__all__ = ["builtin", "parsing", "combine_rewards"]
