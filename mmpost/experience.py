"""Experience sources: where a step's trajectories come from, and the batch they are built into.

A step trains on one `RolloutBatch` (defined here, with its `RowKind`s): `BatchBuilder` pads the rows a source
collects (rollouts from the backend, labels, demonstrations) into it, `completion_mask` marking each completion up to
and including its first EOS.

SFT, RL and their mixtures are one loop with different sources. A source builds the rows of a step
(`collect`), may return an adjusted batch once rewards are known (`after_rewards`: ViSurf's reward controls, HPT's
switch) and once advantages are computed (`after_advantages`), never writing into the one it is given, and says how
the RL and SFT loss terms are weighted at a step (`loss_weights`: CHORD's μ schedule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Sequence

import torch

from mmpost.registry import EXPERIENCE_SOURCES, SCHEDULES
from mmpost.rollout.base import RolloutBackend, SamplingParams
from mmpost.types import PolicyKind, PromptEncoding, Sample


# -- the batch a step trains on ----------------------------------------------------------------------
class RowKind(str, Enum):
    """Where a row of a step came from, which decides how the step treats it: the policy's own rollout, a ground-truth
    label scored as a rollout (ViSurf), or an expert demonstration (SFT rows, CHORD, HPT). A `str` enum, so a plugin
    comparing with "policy" keeps working."""

    POLICY = "policy"
    LABEL = "label"
    EXPERT = "expert"

    def __str__(self) -> str:
        return self.value


@dataclass
class RolloutBatch:
    """Trajectories of one step, rows grouped by `group_ids` (one group per prompt / initial state).

    Token policies: `completion_ids` [N, T] right-padded, `completion_mask` [N, T] (1 up to and including
    the first EOS). `prompt_index[i]` points into `prompts`/`samples` so G rows share one encoding.
    """

    prompts: list[PromptEncoding]
    samples: list[Sample]
    prompt_index: torch.Tensor  # [N] long
    group_ids: torch.Tensor  # [N] long
    completion_ids: torch.Tensor  # [N, T] long
    completion_mask: torch.Tensor  # [N, T] float
    sources: list[RowKind]  # where each row came from (`RowKind`; `rows_of` gives a mask)
    is_sft: torch.Tensor  # [N] bool: trained with the SFT loss instead of the policy-gradient loss
    completions: list[Any] = field(default_factory=list)  # decoded text, or the backend's outputs (e.g. images)
    rewards: torch.Tensor | None = None  # [N]
    reward_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [N], NaN = not applicable
    advantages: torch.Tensor | None = None  # [N] (or [N, T] for per-token advantages)
    old_logprobs: torch.Tensor | None = None  # [N, T]
    ref_logprobs: torch.Tensor | None = None  # [N, T]
    sampling_logprobs: torch.Tensor | None = None  # [N, T], from the rollout engine when it reports them
    keep: torch.Tensor | None = None  # [N] bool, rows that enter the update (zero-variance groups dropped)
    # Rows of one environment episode share a reward and an advantage; None = every row is its own episode.
    episode_ids: torch.Tensor | None = None  # [N] long
    # Per-row tensors a policy kind needs to re-score its rows (denoising: latents [N, K+1, ...], sigmas [N, K+1]).
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    # The step's collated prompt inputs, made once (`mmpost.logprobs.step_collation`): the batches the step derives
    # from this one (`dataclasses.replace`) share the dict, so every log-prob pass hands the model the same tensors.
    collated_prompts: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.group_ids.numel())

    def rows_of(self, kind: RowKind) -> torch.Tensor:
        """[N] bool: the rows that came from `kind`."""
        return torch.tensor([source == kind for source in self.sources], dtype=torch.bool)

    def select(self, rows: torch.Tensor | Sequence[int]) -> "RolloutBatch":
        """A new batch with only `rows` (shared prompt encodings are kept, indices unchanged)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        def pick(t):
            return None if t is None else t[rows]
        return RolloutBatch(
            prompts=self.prompts,
            samples=self.samples,
            prompt_index=self.prompt_index[rows],
            group_ids=self.group_ids[rows],
            completion_ids=self.completion_ids[rows],
            completion_mask=self.completion_mask[rows],
            sources=[self.sources[i] for i in rows.tolist()],
            is_sft=self.is_sft[rows],
            completions=[self.completions[i] for i in rows.tolist()] if self.completions else [],
            rewards=pick(self.rewards),
            reward_parts={k: v[rows] for k, v in self.reward_parts.items()},
            advantages=pick(self.advantages),
            old_logprobs=pick(self.old_logprobs),
            ref_logprobs=pick(self.ref_logprobs),
            sampling_logprobs=pick(self.sampling_logprobs),
            keep=pick(self.keep),
            episode_ids=pick(self.episode_ids),
            aux={k: v[rows] for k, v in self.aux.items()},
        )


def completion_mask(completion_ids: torch.Tensor, eos_token_ids: Sequence[int]) -> torch.Tensor:
    """1 for tokens up to and including the first EOS, 0 after it. [N, T] -> [N, T] float."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_token_ids), device=completion_ids.device))
    # Tokens strictly after the first EOS have at least one EOS before them.
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).float()


def pad_completions(sequences: Sequence[Sequence[int]], pad_id: int, min_length: int = 1) -> torch.Tensor:
    width = max([len(s) for s in sequences] + [min_length])
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out


# -- building it ------------------------------------------------------------------------------------
@dataclass
class StepContext:
    """What a source may use to build a step's rows."""

    policy: PolicyKind
    backend: RolloutBackend
    sampling: SamplingParams
    step: int
    accuracy_reward: str
    reward_names: Sequence[str] = ()


@dataclass
class Row:
    """One trajectory before padding: which prompt, which group, its tokens and how it is trained."""

    prompt_index: int
    group_id: int
    tokens: list[int]
    source: RowKind
    is_sft: bool
    keep: bool = True
    sampling_logprobs: list[float] | None = None
    episode_id: int | None = None
    mask: list[float] | None = None  # overrides the EOS-derived mask (e.g. the trained denoising steps)
    aux: dict[str, torch.Tensor] | None = None  # this row's re-scoring tensors (no leading row dim)
    output: Any = None  # what rewards receive instead of decoded text
    has_output: bool = False


@dataclass
class BatchBuilder:
    """Collects rows of a step and pads them into a `RolloutBatch`.

    A source may append prompts/samples (one per environment observation, say) and point rows at them.
    """

    samples: list[Sample]
    prompts: list[PromptEncoding]
    rows: list[Row] = field(default_factory=list)

    def add_row(self, prompt_index: int, group_id: int, tokens: Sequence[int], *, source: RowKind, is_sft: bool,
                keep: bool = True, sampling_logprobs: list[float] | None = None, episode_id: int | None = None) -> None:
        """A row of any provenance (search trees, environments, ...); tokens end with EOS where the turn ended."""
        self.rows.append(Row(prompt_index, group_id, list(tokens), source, is_sft, keep, sampling_logprobs, episode_id))

    def add_prompt(self, sample: Sample, prompt: PromptEncoding) -> int:
        """Append a prompt (e.g. a new observation) and return its index."""
        self.samples.append(sample)
        self.prompts.append(prompt)
        return len(self.prompts) - 1

    def add_rollouts(self, ctx: StepContext, prompt_indices: Sequence[int] | None = None) -> None:
        indices = list(range(len(self.prompts))) if prompt_indices is None else list(prompt_indices)
        result = ctx.backend.generate([self.prompts[i] for i in indices], [self.samples[i] for i in indices], ctx.sampling)
        self.add_generation(result, indices, ctx.sampling.n)

    def add_generation(self, result, prompt_indices: Sequence[int], n: int, *, group_ids: Sequence[int] | None = None,
                       episode_ids: Sequence[int] | None = None) -> None:
        """Rows from a backend's `GenerationResult` for `prompt_indices` (n per prompt, prompt-major)."""
        for k, index in enumerate(prompt_indices):
            for j in range(n):
                r = k * n + j
                self.rows.append(Row(
                    index, index if group_ids is None else group_ids[k], list(result.completion_ids[r]), RowKind.POLICY, False, True,
                    result.logprobs[r] if result.logprobs is not None else None,
                    episode_id=None if episode_ids is None else episode_ids[r],
                    mask=None if result.masks is None else list(result.masks[r]),
                    aux=None if result.aux is None else {key: value[r] for key, value in result.aux.items()},
                    output=None if result.outputs is None else result.outputs[r], has_output=result.outputs is not None,
                ))

    def add_demonstrations(self, ctx: StepContext, *, source: RowKind, is_sft: bool, keep: bool = True,
                           text_of=None) -> None:
        """One row per prompt holding the task's demonstration (or `text_of(sample)`)."""
        for index, sample in enumerate(self.samples):
            text = text_of(sample) if text_of else ctx.policy.task.target(sample)
            self.rows.append(Row(index, index, ctx.policy.encode_target(text), source, is_sft, keep))

    def build(self, ctx: StepContext) -> RolloutBatch:
        policy = ctx.policy
        # A kind that emits no tokens (denoising) pads its K step slots with 0, and its rows end where they end.
        vocabulary = policy.vocabulary
        completion_ids = pad_completions([r.tokens for r in self.rows], vocabulary.pad_token_id if vocabulary else 0)
        mask = completion_mask(completion_ids, vocabulary.eos_token_ids if vocabulary else ())
        lengths = torch.tensor([len(r.tokens) for r in self.rows])
        mask = mask * (torch.arange(completion_ids.shape[1])[None, :] < lengths[:, None]).float()
        for i, r in enumerate(self.rows):
            if r.mask is not None:
                mask[i] = 0.0
                mask[i, : len(r.mask)] = torch.tensor(r.mask, dtype=mask.dtype)
        sampling_logprobs = None
        if all(r.sampling_logprobs is not None for r in self.rows if r.source == RowKind.POLICY) and any(
            r.source == RowKind.POLICY for r in self.rows
        ):
            sampling_logprobs = torch.full(completion_ids.shape, float("nan"))
            for i, r in enumerate(self.rows):
                if r.sampling_logprobs:
                    sampling_logprobs[i, : len(r.sampling_logprobs)] = torch.tensor(r.sampling_logprobs)
        batch = RolloutBatch(
            prompts=self.prompts,
            samples=self.samples,
            prompt_index=torch.tensor([r.prompt_index for r in self.rows], dtype=torch.long),
            group_ids=torch.tensor([r.group_id for r in self.rows], dtype=torch.long),
            completion_ids=completion_ids,
            completion_mask=mask,
            sources=[r.source for r in self.rows],
            is_sft=torch.tensor([r.is_sft for r in self.rows], dtype=torch.bool),
            keep=torch.tensor([r.keep for r in self.rows], dtype=torch.bool),
            sampling_logprobs=sampling_logprobs,
            episode_ids=_episode_ids(self.rows),
            aux=_stack_aux(self.rows),
        )
        decoded = policy.decode(batch.completion_ids, batch.completion_mask) if not all(r.has_output for r in self.rows) else None
        batch.completions = [r.output if r.has_output else decoded[i] for i, r in enumerate(self.rows)]
        return batch


def _episode_ids(rows: Sequence[Row]) -> torch.Tensor | None:
    """Rows without an episode id are episodes of their own (ids after the largest given one)."""
    if all(r.episode_id is None for r in rows):
        return None
    next_id = max(r.episode_id for r in rows if r.episode_id is not None) + 1
    ids = []
    for r in rows:
        if r.episode_id is None:
            ids.append(next_id)
            next_id += 1
        else:
            ids.append(r.episode_id)
    return torch.tensor(ids, dtype=torch.long)


def _stack_aux(rows: Sequence[Row]) -> dict[str, torch.Tensor]:
    with_aux = [r.aux for r in rows if r.aux is not None]
    if not with_aux:
        return {}
    if len(with_aux) != len(rows):
        raise ValueError("some rows of a step carry re-scoring tensors (aux) and others do not: a step mixes policy kinds")
    return {key: torch.stack([r.aux[key] for r in rows]) for key in with_aux[0]}


class ExperienceSource:
    """Default hooks: no reward/advantage adjustments, RL and SFT terms weighted 1."""

    name = "base"
    # What `mmpost validate` knows about a source's groups: they hold rollout.num_generations rollouts of one prompt
    # plus `extra_group_rows` rows the source adds (False: groups are formed otherwise, or there is no RL).
    groups_from_num_generations = True
    extra_group_rows = 0

    def collect(self, ctx: StepContext, samples: list[Sample], prompts: list[PromptEncoding]) -> RolloutBatch:
        raise NotImplementedError

    # The hooks never write into the batch they are given: a source that adjusts it returns a new one
    # (`dataclasses.replace` with new tensors), with the metrics it logs.
    def after_rewards(self, ctx: StepContext, batch: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        return batch, {}

    def after_advantages(self, ctx: StepContext, batch: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        return batch, {}

    def loss_weights(self, step: int) -> tuple[float, float]:
        return 1.0, 1.0


@EXPERIENCE_SOURCES.register("on_policy")
class OnPolicy(ExperienceSource):
    """GRPO and friends: G rollouts per prompt from the current policy."""

    def collect(self, ctx, samples, prompts):
        builder = BatchBuilder(samples, prompts)
        builder.add_rollouts(ctx)
        return builder.build(ctx)


@EXPERIENCE_SOURCES.register("sft")
class Demonstrations(ExperienceSource):
    """Supervised fine-tuning: one demonstration row per prompt, no sampling."""

    groups_from_num_generations = False

    def collect(self, ctx, samples, prompts):
        builder = BatchBuilder(samples, prompts)
        builder.add_demonstrations(ctx, source=RowKind.EXPERT, is_sft=True)
        return builder.build(ctx)


@EXPERIENCE_SOURCES.register("visurf")
class ViSurf(ExperienceSource):
    """ViSurf (Liu et al. 2025, arXiv 2510.10606): the ground-truth label joins each rollout group.

    The label is scored and normalised with its group, so its term is an SFT gradient weighted by how much
    better the label is than the model's own rollouts. The paper's three reward controls are not public;
    these are documented reconstructions (see recipes/README.md):

    - `label_format`: "target" writes the label in the task's output template (format alignment), "raw"
      injects the bare answer;
    - `neutral_rewards`: reward parts (format/reasoning) whose value on the label row is replaced by the mean
      of the group's rollouts, so the label is neither rewarded nor penalised on them;
    - `label_advantage_cap`: the label's advantage is clipped to at most this value, and with
      `zero_label_advantage_when_solved` it is 0 in groups where a rollout already matches the label's accuracy.
    """

    extra_group_rows = 1  # the label

    def __init__(self, label_format: str = "target", neutral_rewards: Sequence[str] = ("answer_tag_format", "think_answer_format"),
                 label_advantage_cap: float | None = None, zero_label_advantage_when_solved: bool = False) -> None:
        if label_format not in ("target", "raw"):
            raise ValueError(f"visurf label_format must be 'target' or 'raw', got {label_format!r}")
        self.label_format = label_format
        self.neutral_rewards = tuple(neutral_rewards)
        self.label_advantage_cap = label_advantage_cap
        self.zero_label_advantage_when_solved = zero_label_advantage_when_solved

    def collect(self, ctx, samples, prompts):
        builder = BatchBuilder(samples, prompts)
        builder.add_rollouts(ctx)
        text_of = None if self.label_format == "target" else (lambda s: str(s["answer"]))
        builder.add_demonstrations(ctx, source=RowKind.LABEL, is_sft=False, text_of=text_of)
        return builder.build(ctx)

    def after_rewards(self, ctx, batch):
        is_label = batch.rows_of(RowKind.LABEL)
        parts = dict(batch.reward_parts)
        for name in self.neutral_rewards:
            if name not in parts:
                continue
            part = parts[name] = parts[name].clone()
            for group in batch.group_ids[is_label].unique():
                in_group = batch.group_ids == group
                rollout_values = part[in_group & ~is_label]
                rollout_values = rollout_values[~rollout_values.isnan()]
                if rollout_values.numel():
                    part[in_group & is_label] = rollout_values.mean()
        return replace(batch, reward_parts=parts), {}

    def after_advantages(self, ctx, batch):
        is_label = batch.rows_of(RowKind.LABEL)
        uncapped_label = batch.advantages[is_label].clone()
        advantages = batch.advantages.clone()
        zeroed = 0
        if self.zero_label_advantage_when_solved and ctx.accuracy_reward in batch.reward_parts:
            accuracy = batch.reward_parts[ctx.accuracy_reward].nan_to_num(0.0)
            for row in torch.nonzero(is_label).flatten().tolist():
                in_group = (batch.group_ids == batch.group_ids[row]) & ~is_label
                if bool((accuracy[in_group] >= accuracy[row]).any()):
                    advantages[row] = 0.0
                    zeroed += 1
        if self.label_advantage_cap is not None:
            advantages[is_label] = advantages[is_label].clamp(max=self.label_advantage_cap)
        labels = int(is_label.sum())
        accuracy = batch.reward_parts.get(ctx.accuracy_reward)
        kinds = [batch.samples[int(i)].get("kind") if isinstance(batch.samples[int(i)], dict) else None
                 for i in batch.prompt_index.tolist()]
        return replace(batch, advantages=advantages), {
            "visurf/label_advantage_mean": float(advantages[is_label].mean()) if labels else 0.0,
            "visurf/label_zeroed_fraction": zeroed / max(labels, 1),
            **label_signal(batch.group_ids, is_label, advantages, uncapped_label, batch.completion_mask.sum(1),
                           batch.keep, accuracy, kinds)}


def label_signal(group_ids: torch.Tensor, is_label: torch.Tensor, advantages: torch.Tensor, uncapped: torch.Tensor,
                 lengths: torch.Tensor, keep: torch.Tensor | None, accuracy: torch.Tensor | None = None,
                 kinds: Sequence[Any] | None = None) -> dict[str, float]:
    """How much supervised signal ViSurf's injected labels carry in one step (diagnostics, `visurf/` metrics).

    group_ids, is_label, advantages (after the reward controls), lengths (completion tokens), keep: [N]; uncapped:
    the label rows' advantages before the controls, in row order. With the recipe's `token_mean` aggregation the
    label row's loss is -A_label * sum_t log pi(y*_t) / N_tokens (all RL rows of the step), where SFT's is
    -sum_t log pi(y*_t) / N_label_tokens. So:
    - `label_sft_scale` = sum_labels A * len / N_tokens: the label term as a multiple of SFT's loss on the same
      labels (SFT = 1);
    - `label_weight_share` = sum_labels |A| * len / sum_rows |A| * len: the labels' share of the step's
      advantage-weighted tokens (SFT = 1: the direction the labels pull, against what the rollouts pull);
    - `label_advantage_positive_fraction`, `label_advantage_negative_fraction` (the label pushed down: a group whose
      rollouts score above the label on a part the controls did not neutralise), `label_advantage_capped_fraction`
      (the controls changed it),
      `label_advantage_uncapped_mean`;
    - per question kind (samples with a `kind`): the label's advantage mean, its positive share, the rollouts'
      accuracy, and the count of labels (`labels/<kind>`, to weight means over steps).
    """
    rows = keep if keep is not None else torch.ones_like(is_label)
    adv = advantages.float() if advantages.dim() == 1 else advantages.float().mean(1)
    label = is_label & rows
    weight = adv.abs() * lengths.float()
    total_tokens = float(lengths[rows].sum())
    out: dict[str, float] = {}
    labels = int(is_label.sum())
    if not labels:
        return out
    label_adv = adv[is_label]
    out["visurf/label_advantage_uncapped_mean"] = float(uncapped.float().mean())
    out["visurf/label_advantage_positive_fraction"] = float((label_adv > 0).float().mean())
    out["visurf/label_advantage_negative_fraction"] = float((label_adv < 0).float().mean())  # the label pushed down
    out["visurf/label_advantage_capped_fraction"] = float((label_adv != uncapped.float()).float().mean())
    out["visurf/label_sft_scale"] = float((adv * lengths.float())[label].sum()) / total_tokens if total_tokens else 0.0
    weighted = float(weight[rows].sum())
    out["visurf/label_weight_share"] = float(weight[label].sum()) / weighted if weighted else 0.0
    if kinds is not None and any(k is not None for k in kinds):
        label_rows = torch.nonzero(is_label).flatten().tolist()
        for kind in sorted({str(kinds[i]) for i in label_rows}):
            mine = [i for i in label_rows if str(kinds[i]) == kind]
            values = adv[mine]
            out[f"visurf/labels/{kind}"] = float(len(mine))
            out[f"visurf/label_advantage_mean/{kind}"] = float(values.mean())
            out[f"visurf/label_advantage_positive_fraction/{kind}"] = float((values > 0).float().mean())
            if accuracy is not None:
                groups = group_ids[mine]
                rollouts = ~is_label & torch.isin(group_ids, groups)
                scores = accuracy[rollouts]
                scores = scores[~scores.isnan()]
                if scores.numel():
                    out[f"visurf/rollout_accuracy/{kind}"] = float(scores.mean())
    return out


@EXPERIENCE_SOURCES.register("hpt")
class HybridPostTraining(ExperienceSource):
    """HPT (Lv et al. 2025, official `select_on_off_ada_balance`): per prompt, if at most `switch_gate`
    rollouts are correct, the rollouts are dropped and the demonstration is trained with the SFT loss;
    otherwise the group is trained with GRPO."""

    def __init__(self, switch_gate: int = 0, correct_threshold: float = 1.0) -> None:
        self.switch_gate = switch_gate
        self.correct_threshold = correct_threshold

    def collect(self, ctx, samples, prompts):
        builder = BatchBuilder(samples, prompts)
        builder.add_rollouts(ctx)
        builder.add_demonstrations(ctx, source=RowKind.EXPERT, is_sft=True, keep=False)
        return builder.build(ctx)

    def after_rewards(self, ctx, batch):
        if ctx.accuracy_reward not in batch.reward_parts:
            raise ValueError(f"hpt needs the accuracy reward '{ctx.accuracy_reward}' among the rewards")
        correct = batch.reward_parts[ctx.accuracy_reward].nan_to_num(0.0) >= self.correct_threshold
        is_policy = batch.rows_of(RowKind.POLICY)
        keep = batch.keep.clone()
        switched = 0
        for group in batch.group_ids.unique():
            in_group = batch.group_ids == group
            if int((correct & in_group & is_policy).sum()) <= self.switch_gate:
                keep[in_group & is_policy] = False
                keep[in_group & batch.is_sft] = True
                switched += 1
        return replace(batch, keep=keep), {"hpt/sft_fraction": switched / max(int(batch.group_ids.unique().numel()), 1)}


@EXPERIENCE_SOURCES.register("chord")
class Chord(ExperienceSource):
    """CHORD (Zhang et al. 2025, Trinity-RFT `mix_chord`): L = (1-μ)·L_RL + μ·L_SFT over an expert batch,
    μ following `mu_schedule` (default `chord_mu`: warm-up, cosine decay, floor). Token weighting φ is the
    SFT loss choice (`algorithm.sft_loss: chord_phi`)."""

    def __init__(self, mu_schedule: str = "chord_mu", mu_args: dict | None = None) -> None:
        self.mu = SCHEDULES.get(mu_schedule)
        self.mu_args = dict(mu_args or {"warmup": 0, "decay": 200, "peak": 0.9, "valley": 0.05})

    def collect(self, ctx, samples, prompts):
        builder = BatchBuilder(samples, prompts)
        builder.add_rollouts(ctx)
        builder.add_demonstrations(ctx, source=RowKind.EXPERT, is_sft=True)
        return builder.build(ctx)

    def loss_weights(self, step):
        mu = float(self.mu(step, **self.mu_args))
        if not (0.0 <= mu <= 1.0) or math.isnan(mu):
            raise ValueError(f"chord: mu({step}) = {mu} is outside [0, 1]")
        return 1.0 - mu, mu
