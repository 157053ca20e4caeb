"""The policy update: one mini-batch's loss, accumulated over micro-batches and processes.

Each micro-batch loss is divided by normalisers counted over the whole mini-batch on all processes, so
summing micro-batch gradients (and DDP's average, undone by `world_size`) gives exactly the full-batch
gradient: 1 x 8 rows = 8 x 1 rows = 2 processes x 4 rows. One aggregation is deliberately not invariant
to the process count: `token_sum_norm` (verl's seq-mean-token-sum-norm, HPT) divides by C·P as the
reference codes do on P GPUs (see its docstring).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist

from mmpost.algos.kl import importance_weighted
from mmpost.distributed import gradient_sync, same_count_on_every_rank
from mmpost.experience import RolloutBatch
from mmpost.logprobs import LogprobPlan
from mmpost.policy import adapter_disabled
from mmpost.registry import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES, SFT_LOSSES


class TrainingError(RuntimeError):
    """A failure inside the update (a NaN loss, ...), named with the step and the rows."""


@dataclass(frozen=True)
class LossSettings:
    """The loss's run-long decisions, made once when the run is built and never changed: which loss functions with
    which options, and how log-prob passes lay out rows (`passes`). Per-step values (the RL/SFT/KL weights) are
    not here: they come with each call (`StepWeights`)."""

    policy_loss: Callable
    policy_loss_args: dict
    aggregation: Callable
    sft_loss: Callable
    sft_loss_args: dict
    kl: Callable | None  # the KL estimator when the KL term is in the loss, else None
    norm_constant: int
    passes: LogprobPlan = field(default_factory=LogprobPlan)
    policy: Any = None  # the policy kind: computes [n, K] log-probs of rows (tokens, denoising steps)
    tis_cap: float | None = None
    kl_importance_weighted: bool = False

    @property
    def kl_from_policy(self) -> bool:
        """The policy kind computes its own KL term (Flow-GRPO: KL between step means), not from reference log-probs."""
        return self.kl is not None and bool(self.policy.computes_own_kl)

    @classmethod
    def from_config(cls, algorithm: Any, rollout: Any, policy: Any, passes: LogprobPlan | None = None) -> "LossSettings":
        """From the config; `passes` defaults to `algorithm.logprob_pass` as given ("auto": shared_prefix), without
        sharding or gradient checkpointing (the builder decides it from the prepared model)."""
        kl_in_loss = algorithm.kl_coef > 0 and not algorithm.kl_in_reward
        if passes is None:
            layout = "shared_prefix" if algorithm.logprob_pass == "auto" else algorithm.logprob_pass
            passes = LogprobPlan.decide(layout, micro_batch_size=algorithm.micro_batch_size,
                                        token_budget=algorithm.token_budget, temperature=rollout.temperature)
        return cls(
            policy_loss=POLICY_LOSSES.get(algorithm.policy_loss),
            policy_loss_args=dict(algorithm.policy_loss_args),
            aggregation=AGGREGATIONS.get(algorithm.aggregation),
            sft_loss=SFT_LOSSES.get(algorithm.sft_loss),
            sft_loss_args=dict(algorithm.sft_loss_args),
            kl=KL_ESTIMATORS.get(algorithm.kl_estimator) if kl_in_loss else None,
            norm_constant=algorithm.norm_constant or rollout.max_new_tokens,
            passes=passes,
            policy=policy,
            tis_cap=getattr(algorithm, "tis_cap", None),
            kl_importance_weighted=bool(getattr(algorithm, "kl_importance_weighted", False)),
        )

    @property
    def sft_needs_full_distribution(self) -> bool:
        return bool(getattr(self.sft_loss, "needs_full_distribution", False))

    @functools.cached_property
    def _exponent_table(self) -> torch.Tensor:
        from mmpost.algos.sft_losses import SA_DFT_WEIGHTS, sa_dft_exponent_table

        weights = {k: float(v) for k, v in self.sft_loss_args.items() if k in SA_DFT_WEIGHTS}
        if self.policy.vocabulary is None:
            raise ValueError(f"algorithm.sft_loss=sa_dft weighs tokens; policy kind {type(self.policy).__name__} emits none")
        return sa_dft_exponent_table(self.policy.vocabulary.tokenizer, **weights)

    def sft_token_exponents(self, token_ids: torch.Tensor) -> torch.Tensor:
        """SA-DFT's per-token exponents of `token_ids` [n, T], from a per-vocabulary table built once."""
        table = self._exponent_table
        return table[token_ids.clamp(0, len(table) - 1)]


@dataclass(frozen=True)
class StepWeights:
    """This step's weights of the loss terms: the experience source's RL and SFT weights (`loss_weights(step)`,
    times `algorithm.sft_coef`) and the KL controller's beta. Computed by the trainer each step, passed in."""

    rl: float = 1.0
    sft: float = 1.0
    kl: float = 0.0


@dataclass(frozen=True)
class Learner:
    """What an update moves: the (prepared) model and its optimizer and scheduler, the frozen reference (None: the
    policy with its adapter disabled, or no reference), and the gradient clipping (0 = none)."""

    accelerator: Any
    model: torch.nn.Module
    reference: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    max_grad_norm: float = 0.0


def _all_reduce(values: torch.Tensor, op=None) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=op or dist.ReduceOp.SUM)
    return values


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def process_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_rows(*columns: torch.Tensor) -> tuple[list[torch.Tensor], slice]:
    """Concatenate per-row columns [n_rank] of every process in rank order; also this process's slice.

    Processes may hold different row counts (padding to the largest count is removed again). One
    process returns the columns unchanged. Used where a statistic must cover the global batch
    (batch-level reward std, whitening), as TRL, verl and flow_grpo compute it.
    """
    world = world_size()
    n = int(columns[0].shape[0]) if columns else 0
    if world == 1:
        return list(columns), slice(0, n)
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([n]))
    counts = [int(c) for c in counts]
    largest, rank = max(counts), dist.get_rank()
    gathered = []
    for column in columns:
        padded = torch.zeros((largest, *column.shape[1:]), dtype=column.dtype)
        padded[:n] = column.cpu()
        parts = [torch.zeros_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        gathered.append(torch.cat([part[:count] for part, count in zip(parts, counts)]))
    start = sum(counts[:rank])
    return gathered, slice(start, start + n)


def normalisers(batch: RolloutBatch, rows: torch.Tensor) -> dict[str, float]:
    """Token and sequence counts of RL and SFT rows in a mini-batch, summed over processes."""
    mask = batch.completion_mask[rows]
    is_sft = batch.is_sft[rows]
    counts = torch.tensor([
        float(mask[~is_sft].sum()), float((~is_sft).sum()), float(mask[is_sft].sum()), float(is_sft.sum()),
    ], dtype=torch.float64)
    counts = _all_reduce(counts)
    return {"rl_tokens": counts[0].item(), "rl_sequences": counts[1].item(),
            "sft_tokens": counts[2].item(), "sft_sequences": counts[3].item()}


def reference_logprobs(policy_model, reference, batch, rows, settings, *, full_distribution=False):
    """Log-probs under the frozen reference: a separate model, or the policy with its adapter disabled."""
    options = settings.passes.pass_options(with_grad=False, full_distribution=full_distribution)
    with torch.no_grad():
        if reference is not None:
            return settings.policy.logprobs(reference, batch, rows, **options)
        with adapter_disabled(policy_model):
            return settings.policy.logprobs(policy_model, batch, rows, **options)


def micro_batch_loss(model, reference, batch: RolloutBatch, rows: torch.Tensor, settings: LossSettings,
                     norms: dict[str, float], weights: StepWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of `rows`, normalised by mini-batch-wide counts; returns the loss and its parts as floats."""
    is_sft = batch.is_sft[rows]
    need_full = settings.sft_needs_full_distribution and bool(is_sft.any())
    logprobs, log_dist = settings.policy.logprobs(model, batch, rows,
                                                  **settings.passes.pass_options(with_grad=True, full_distribution=need_full))
    mask = batch.completion_mask[rows].to(logprobs.device)
    total = logprobs.sum() * 0.0  # keeps every micro-batch in the autograd graph, also empty ones
    parts: dict[str, float] = {}
    rl = ~is_sft
    if rl.any() and norms["rl_sequences"] > 0:
        old = batch.old_logprobs[rows][rl] if batch.old_logprobs is not None else logprobs[rl].detach()
        advantages = batch.advantages[rows][rl].to(logprobs.device)
        token_loss, loss_metrics = settings.policy_loss(logprobs[rl], old.to(logprobs.device), advantages, mask[rl],
                                                        **settings.policy_loss_args)
        if settings.tis_cap is not None and batch.sampling_logprobs is not None:
            token_loss, tis_mean = _tis_weighted(token_loss, old.to(logprobs.device), batch.sampling_logprobs[rows][rl],
                                                 mask[rl], settings.tis_cap)
            loss_metrics = {**loss_metrics, "tis_weight_mean": tis_mean}
        agg = dict(num_tokens=norms["rl_tokens"], num_sequences=norms["rl_sequences"], norm_constant=settings.norm_constant,
                   num_processes=world_size())
        policy_term = settings.aggregation(token_loss, mask[rl], **agg)
        total = total + weights.rl * policy_term
        parts["loss/policy"] = float(policy_term.detach())
        for key, value in loss_metrics.items():
            parts[f"loss/{key}"] = float(value) * float(rl.sum()) / norms["rl_sequences"]
        if settings.kl is not None:
            if settings.kl_from_policy:
                kl_tokens = settings.policy.kl_terms(model, reference, batch, rows[rl], _select(log_dist, rl))
            else:
                kl_tokens = settings.kl(logprobs[rl], batch.ref_logprobs[rows][rl].to(logprobs.device))
                if settings.kl_importance_weighted:
                    level = getattr(settings.policy_loss, "importance_sampling_level", "token")
                    kl_tokens = importance_weighted(kl_tokens, logprobs[rl], old.to(logprobs.device), mask[rl], level=level)
            kl_term = settings.aggregation(kl_tokens, mask[rl], **agg)
            # beta * KL sits outside the source's RL weight, as Trinity-RFT's CHORD adds it after the mu mix.
            total = total + weights.kl * kl_term
            parts["loss/kl"] = float(kl_term.detach())
    if is_sft.any() and norms["sft_sequences"] > 0:
        extra = {}
        if getattr(settings.sft_loss, "needs_token_exponents", False):
            extra["token_exponents"] = settings.sft_token_exponents(batch.completion_ids[rows][is_sft]).to(logprobs.device)
        if need_full:
            _, ref_dist = reference_logprobs(model, reference, batch, rows[is_sft], settings, full_distribution=True)
            extra.update(log_dist=log_dist[is_sft], ref_log_dist=ref_dist)
        token_loss = settings.sft_loss(logprobs[is_sft], mask[is_sft], **settings.sft_loss_args, **extra)
        sft_term = AGGREGATIONS.get("token_mean")(token_loss, mask[is_sft], num_tokens=norms["sft_tokens"])
        total = total + weights.sft * sft_term
        parts["loss/sft"] = float(sft_term.detach())
    parts["loss/total"] = float(total.detach())
    return total, parts


def _tis_weighted(token_loss: torch.Tensor, old: torch.Tensor, sampling: torch.Tensor, mask: torch.Tensor,
                  cap: float) -> tuple[torch.Tensor, float]:
    """Token losses times min(pi_old / pi_rollout, cap); rows without engine log-probs (labels) keep weight 1."""
    from mmpost.algos.tis import truncated_is_weights

    sampling = sampling.to(old.device)
    known = ~sampling.isnan()
    weights = truncated_is_weights(old.detach(), torch.where(known, sampling, old.detach()), mask * known, cap)
    weights = torch.where(known, weights, torch.ones_like(weights))
    used = (mask * known).sum()
    mean = float((weights * mask * known).sum() / used) if used > 0 else 1.0
    return token_loss * weights, mean


def _select(extra, rows_mask: torch.Tensor):
    """Rows of a policy kind's extra output (a tensor or a dict of tensors), or None."""
    if extra is None:
        return None
    if isinstance(extra, dict):
        return {k: v[rows_mask.to(v.device)] for k, v in extra.items()}
    return extra[rows_mask.to(extra.device)]


def update_mini_batch(learner: Learner, batch: RolloutBatch, rows: torch.Tensor, settings: LossSettings,
                      weights: StepWeights, *, step: int) -> dict[str, float]:
    """Forward/backward over micro-batches of `rows`, then one optimizer step. Returns summed loss parts."""
    accelerator, model = learner.accelerator, learner.model
    norms = normalisers(batch, rows)
    chunks = settings.passes.micro_batches(batch, rows) or [batch.completion_mask.new_zeros(0, dtype=torch.long)]
    # Every process must run the same number of backward passes or DDP waits forever.
    count = same_count_on_every_rank(len(chunks))
    loss_weights = [1.0] * len(chunks) + [0.0] * (count - len(chunks))
    chunks = chunks + [chunks[-1] if len(chunks[-1]) else torch.tensor([0])] * (count - len(chunks))
    scale = world_size()  # DDP averages gradients over processes; the normalisers already did
    totals: dict[str, float] = {}
    for index, (chunk, weight) in enumerate(zip(chunks, loss_weights)):
        last = index == len(chunks) - 1
        with gradient_sync(accelerator, model, sync=last):
            loss, parts = micro_batch_loss(model, learner.reference, batch, chunk, settings, norms, weights)
            if not torch.isfinite(loss):
                ids = [batch.samples[int(batch.prompt_index[r])].get("id", "?") for r in chunk]
                raise TrainingError(f"non-finite loss ({loss.item()}) at step {step}, micro-batch {index}, sample ids {ids}; "
                                    f"no checkpoint was written for this step")
            accelerator.backward(loss * (weight * scale))
        if weight:
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value
    if learner.max_grad_norm > 0:
        grad_norm = accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], learner.max_grad_norm)
        totals["perf/grad_norm"] = float(grad_norm)
    learner.optimizer.step()
    learner.scheduler.step()
    learner.optimizer.zero_grad(set_to_none=True)
    return totals
