"""Rewards: `fn(completions, samples, **args) -> list[float | None]`, registered in `REWARDS` by name.

Importing this package registers the built-ins (`answer_tag_format`, `think_answer_format`,
`exact_match`, `choice_match`, `math_match`, `box_iou`, `point_in_box`); `parsing` holds the pure
answer-extraction helpers and `geometry` the box and point functions that they, the GUI modality and the
evaluation scorers share.
"""
from mmpost.rewards import builtin, geometry, parsing
from mmpost.rewards.builtin import combine_rewards

__all__ = ["builtin", "geometry", "parsing", "combine_rewards"]
