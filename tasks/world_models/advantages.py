"""Frame-level GRPO for world models whose reward is per frame (RLIR's IDM matches, RLinf's per-frame rewards).

Video level (RLIR as published): the frame scores are averaged into one reward per video and normalised in its
group by the engine's `grpo`. Frame level (RLinf `compute_grpo_video_advantages`, "normalised per frame"):
each frame position f is normalised within the group on its own,

    A[i, f] = (r[i, f] − mean_{j∈g(i)} r[j, f]) / (std_{j∈g(i)} r[j, f] + eps)        (unbiased std)

so a video that gets frame 2 right while its siblings do not is credited on frame 2's tokens only.
"""
from __future__ import annotations

from typing import Sequence

import torch

from mmpost.algos.advantages import group_stats

_WHERE = __name__


def grpo_frame(frame_rewards: torch.Tensor, group_ids: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Per-frame group-normalised advantages: frame_rewards [N, F] float, group_ids [N] int -> [N, F].

    A group of one row, or a frame position on which the whole group agrees, gets advantage 0.
    """
    if frame_rewards.dim() != 2 or group_ids.shape != frame_rewards.shape[:1]:
        raise ValueError(f"{_WHERE}: grpo_frame needs frame_rewards [N, F] and group_ids [N], got "
                         f"{tuple(frame_rewards.shape)} and {tuple(group_ids.shape)}")
    rewards = frame_rewards.float()
    columns = []
    for f in range(rewards.shape[1]):
        stats = group_stats(rewards[:, f], group_ids)
        centred = rewards[:, f] - stats.mean
        columns.append(torch.where(stats.count > 1, centred / (stats.std + eps), torch.zeros_like(centred)))
    return torch.stack(columns, dim=1) if columns else rewards.clone()


def token_advantages(completion_ids: torch.Tensor, frame_advantages: torch.Tensor, separator_ids: Sequence[int]) -> torch.Tensor:
    """Spread per-frame advantages [N, F] over completion tokens [N, T] -> [N, T].

    Frame j's tokens are those after the (j−1)-th separator of the completion (frame 1 starts the completion);
    a separator belongs to the frame it opens, and tokens past frame F (EOS, padding, stray extra frames) get
    frame F's advantage (padding is masked out by the loss anyway).
    """
    if completion_ids.shape[0] != frame_advantages.shape[0]:
        raise ValueError(f"{_WHERE}: {completion_ids.shape[0]} completions but {frame_advantages.shape[0]} advantage rows")
    is_separator = torch.isin(completion_ids, torch.tensor(list(separator_ids), dtype=completion_ids.dtype))
    frame_index = torch.cumsum(is_separator.long(), dim=1).clamp(max=frame_advantages.shape[1] - 1)
    return torch.gather(frame_advantages.float(), 1, frame_index)
