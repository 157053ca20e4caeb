"""Experience source "rlir": on-policy world-model rollouts with video- or frame-level GRPO advantages.

`advantage_level: video` (default, RLIR as published) leaves the engine's per-sequence advantages alone: the
configured rewards (e.g. `idm_soft`, a mean over frames) are normalised per group by the engine's estimator.
`advantage_level: frame` recomputes per-frame IDM scores (`frame_reward`: soft | exact | continuous) after the
engine's advantages and replaces `batch.advantages` by per-token advantages [N, T]: `grpo_frame` per frame
position, spread over each frame's tokens (`token_advantages`). Rows that are not the policy's own rollouts keep
their sequence advantage, broadcast over T.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from mmpost.experience import BatchBuilder, ExperienceSource, RowKind
from mmpost.modalities.frames.processing import FrameVocabulary, separator_token
from mmpost.registry import EXPERIENCE_SOURCES
from mmpost.tasks.world_models.advantages import grpo_frame, token_advantages
from mmpost.tasks.world_models.rewards import frame_scores

LEVELS = ("video", "frame")


@EXPERIENCE_SOURCES.register("rlir")
class RlirSource(ExperienceSource):
    """Options: `advantage_level` (video | frame), `frame_reward` (soft | exact | continuous), `idm_path`, `eps`."""

    name = "rlir"

    def __init__(self, advantage_level: str = "video", frame_reward: str = "soft", idm_path: str | None = None,
                 eps: float = 1e-6) -> None:
        if advantage_level not in LEVELS:
            raise ValueError(f"rlir: advantage_level must be one of {LEVELS}, got {advantage_level!r}")
        if frame_reward not in ("soft", "exact", "continuous"):
            raise ValueError(f"rlir: frame_reward must be soft | exact | continuous, got {frame_reward!r}")
        self.advantage_level, self.frame_reward, self.idm_path, self.eps = advantage_level, frame_reward, idm_path, eps

    def collect(self, ctx, samples, prompts):
        builder = BatchBuilder(samples, prompts)
        builder.add_rollouts(ctx)
        return builder.build(ctx)

    def after_advantages(self, ctx, batch):
        if self.advantage_level == "video":
            return batch, {}
        policy_rows = batch.rows_of(RowKind.POLICY) & ~batch.is_sft
        sequence = batch.advantages if batch.advantages.dim() == 2 else batch.advantages[:, None].expand_as(batch.completion_mask)
        advantages = sequence.clone().float()
        rows = torch.nonzero(policy_rows).flatten()
        if rows.numel() == 0:
            return replace(batch, advantages=advantages), {}
        samples = [batch.samples[int(batch.prompt_index[i])] for i in rows]
        ids = [batch.completion_ids[i][batch.completion_mask[i].bool()].tolist() for i in rows]
        texts = [batch.completions[i] if batch.completions else "" for i in rows.tolist()]
        scores = torch.as_tensor(frame_scores(texts, samples, mode=self.frame_reward, completion_ids=ids,
                                              idm_path=self.idm_path), dtype=torch.float32)
        frame_advantages = grpo_frame(scores, batch.group_ids[rows], eps=self.eps)
        vocabulary = FrameVocabulary.from_vocab(ctx.policy.tokenizer.get_vocab())
        vocab = ctx.policy.tokenizer.get_vocab()
        separators = [vocab[separator_token(j)] for j in range(1, vocabulary.max_frames + 1)]
        advantages[rows] = token_advantages(batch.completion_ids[rows], frame_advantages, separators)
        return replace(batch, advantages=advantages), {"rlir/frame_score_mean": float(scores.mean()),
                "rlir/frame_advantage_abs_mean": float(frame_advantages.abs().mean())}
