"""The loop: rollout -> score -> old/ref log-probs -> advantages -> update -> sync weights -> log/checkpoint.

One loop for SFT, RL and their mixtures; the experience source decides what a step's rows are.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from mmpost.algos.advantages import zero_variance_groups
from mmpost.builder import Run, build_run, validate
from mmpost.checkpoint import load_model_weights, optimizer_state_from_files, rng_state_from_files, save_checkpoint
from mmpost.errors import RunInterrupted
from mmpost.run_dir import (RunStart, append_to_log, apply_resumed_settings, claim_output_dir, last_checkpoint_text, log_failure,
                            run_log)
from mmpost.config import AlgorithmConfig, Config, save_config, to_dict
from mmpost.diagnostics import RunDiagnostics
from mmpost.distributed import load_sharded_state, same_count_on_every_rank, sharding
from mmpost.experience import RolloutBatch, RowKind, StepContext
from mmpost.metrics import curves_title, plot_curves
from mmpost.registry import ADVANTAGES, KL_ESTIMATORS
from mmpost.rollout.base import RolloutBackendError, SamplingParams
from mmpost.scoring import BoundReward, score_batch, total_reward
from mmpost.trackers import Trackers
from mmpost.types import DataError, MediaError, media_root
from mmpost.update import StepWeights, _all_reduce, gather_rows, process_rank, reference_logprobs, update_mini_batch, world_size
from mmpost.vision_cache import reuse_vision_features

log = logging.getLogger(__name__)


@contextlib.contextmanager
def timed(metrics: dict[str, float], key: str):
    start = time.perf_counter()
    yield
    metrics[key] = metrics.get(key, 0.0) + time.perf_counter() - start


# -- phases -----------------------------------------------------------------------------------------
def decode_samples(run: Run, rows: list[dict]) -> tuple[list[dict], int]:
    """Decode media against the row's media root; a broken row (media or fields) stops the run, naming it, unless
    `data.skip_bad_rows` is set: then it is left out, logged once with its reason and remembered in `run.skipped_rows`.
    Returns the decoded samples and the number of distinct rows this run has skipped so far (`data/skipped_rows`)."""
    samples = []
    for row in rows:
        try:
            samples.append(run.modality.decode(row, media_root(row, run.config.data)))
        except (MediaError, DataError) as error:
            row_id = row.get("id", "?")
            if not run.config.data.skip_bad_rows:
                raise type(error)(f"{error} (row id {row_id!r}; set data.skip_bad_rows=true to skip such rows)") from error
            key = str(row.get("_source") or f"id {row_id!r}")
            if key not in run.skipped_rows:
                log.warning("skipping row %s (id %r): %s", key, row_id, error)
                run.skipped_rows[key] = str(error)
    return samples, len(run.skipped_rows)


def batched_logprobs(model, batch: RolloutBatch, run: Run, *, reference: bool) -> torch.Tensor:
    """Log-probs [N, T] of every row without gradients (old policy, or the reference), in the update's micro-batches."""
    settings = run.plan.loss
    chunks = settings.passes.micro_batches(batch, torch.arange(len(batch)))
    padding = same_count_on_every_rank(len(chunks), needed=run.plan.sharded) - len(chunks)
    out = torch.zeros(batch.completion_mask.shape)
    for index, rows in enumerate(chunks + [torch.tensor([0])] * padding):
        if reference:
            logprobs, _ = reference_logprobs(model, run.reference, batch, rows, settings)
        else:
            with torch.no_grad():
                logprobs, _ = settings.policy.logprobs(model, batch, rows, **settings.passes.pass_options(with_grad=False))
        if index < len(chunks):  # padding forwards only keep the ranks in step
            out[rows] = logprobs.float().cpu()
    return out * batch.completion_mask


def episode_rows(episode_ids: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each episode [E], episode index of each row [N]); without episode ids every row is one."""
    if episode_ids is None:
        rows = torch.arange(n)
        return rows, rows
    unique, inverse = torch.unique(episode_ids, return_inverse=True)
    first = torch.full((len(unique),), n, dtype=torch.long).scatter_reduce(0, inverse, torch.arange(n), reduce="amin")
    return first, inverse


def compute_advantages(batch: RolloutBatch, algorithm: AlgorithmConfig) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The estimator runs once per episode (a row is an episode unless the source says otherwise) and the
    result is broadcast to the episode's rows, so a long episode does not weigh more in its group's statistics.

    Rows no reward applied to (every reward None: NaN in `batch.rewards`) stay out of every statistic and
    get advantage 0, as TRL; `reward/unscorable` counts them. The estimator sees the episodes of all
    processes (gathered, groups made distinct per process), so batch-level statistics (`scale: batch`,
    Flow-GRPO's global std, REINFORCE++ whitening) are over the global batch; each process keeps its slice.
    Reads `algorithm.advantage`, `advantage_args` and `drop_zero_variance_groups`; returns (advantages [N], keep [N]:
    `batch.keep` less the flat groups, metrics) and writes nothing into the batch.
    """
    first, episode_of_row = episode_rows(batch.episode_ids, len(batch))
    if batch.episode_ids is not None:
        def reduce(how: str) -> torch.Tensor:
            return torch.zeros(len(first)).scatter_reduce(0, episode_of_row, batch.rewards, reduce=how, include_self=False)

        spread = reduce("amax") - reduce("amin")
        if bool((spread.abs() > 1e-6).any()):
            raise ValueError("rows of one episode carry different rewards; an episode's rows must share its return")
    rewards, groups, rl = batch.rewards[first], batch.group_ids[first], ~batch.is_sft[first]
    scored = ~rewards.isnan()
    used = rl & scored
    lengths = torch.zeros(len(first)).index_add_(0, episode_of_row, batch.completion_mask.sum(1).float())
    # Group ids are only unique within a process: renumber them (local index * world + rank) before gathering.
    local_groups = torch.unique(groups[used], return_inverse=True)[1] if bool(used.any()) else torch.zeros(0, dtype=torch.long)
    (all_rewards, all_groups, all_lengths), own = gather_rows(
        rewards[used].double(), local_groups * world_size() + process_rank(), lengths[used].double())
    episode_advantages = torch.zeros(len(first))
    if all_rewards.numel():
        estimator = ADVANTAGES.get(algorithm.advantage)
        extra = {"lengths": all_lengths.to(rewards.dtype)} if _declares(estimator, "lengths") else {}
        advantages = estimator(all_rewards.to(rewards.dtype), all_groups, **algorithm.advantage_args, **extra).float()
        episode_advantages[used] = advantages[own]
    advantages = episode_advantages[episode_of_row]
    keep = batch.keep
    unscorable = float(_all_reduce(torch.tensor([float((rl & ~scored).sum())], dtype=torch.float64))[0])
    dropped = 0.0
    if algorithm.drop_zero_variance_groups and rl.any():
        # A group is flat when its scored rows agree (or none was scored); all of its rows go.
        flat_ids = groups[used][zero_variance_groups(rewards[used], groups[used])] if bool(used.any()) else groups[:0]
        flat_episode = rl & (torch.isin(groups, flat_ids) | ~torch.isin(groups, groups[used]))
        keep = keep & ~flat_episode[episode_of_row]
        dropped = float(flat_episode.sum()) / max(float(rl.sum()), 1.0)
    return advantages, keep, {"rollout/zero_variance_fraction": dropped, "reward/unscorable": unscorable}


def _declares(function, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def penalise_kl_in_reward(batch: RolloutBatch, current: torch.Tensor, *, estimator: str,
                          coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """(rewards [N], metrics): r_i - beta * sum_t KL_t (verl `apply_kl_penalty`: token-level rewards minus beta*KL,
    summed for an outcome reward). Logs `reward/kl` as verl measures it for its KL controller: the per-sequence token mean of the KL,
    averaged over all processes' sequences; the adaptive controller reads it."""
    kl = KL_ESTIMATORS.get(estimator)(current, batch.ref_logprobs) * batch.completion_mask
    rewards = batch.rewards - coef * kl.sum(1)
    per_sequence = kl.sum(1) / batch.completion_mask.sum(1).clamp(min=1.0)
    totals = _all_reduce(torch.tensor([float(kl.sum(1).sum()), float(per_sequence.sum()), float(len(batch))], dtype=torch.float64))
    count = max(float(totals[2]), 1.0)
    return rewards, {"reward/kl_penalty": float(totals[0]) / count, "reward/kl": float(totals[1]) / count, "reward/kl_coef": coef}


def reward_metrics(batch: RolloutBatch, rewards: Sequence[BoundReward]) -> dict[str, float]:
    """Means over the policy's own rollouts, across processes."""
    policy_rows = batch.rows_of(RowKind.POLICY)
    keys = ["reward/mean"] + [f"reward/{r.name}" for r in rewards]
    columns = [batch.rewards] + [batch.reward_parts[r.name] for r in rewards]
    sums, counts = [], []
    for column in columns:
        values = column[policy_rows]
        values = values[~values.isnan()]
        sums.append(float(values.sum()))
        counts.append(float(values.numel()))
    lengths = batch.completion_mask[policy_rows].sum(1)
    totals = _all_reduce(torch.tensor(sums + counts + [float(lengths.sum()), float(policy_rows.sum())], dtype=torch.float64))
    n = len(keys)
    metrics = {k: (totals[i] / totals[n + i]).item() if totals[n + i] > 0 else float("nan") for i, k in enumerate(keys)}
    metrics["rollout/gen_tokens"] = totals[2 * n].item()
    metrics["rollout/mean_length"] = (totals[2 * n] / totals[2 * n + 1]).item() if totals[2 * n + 1] > 0 else 0.0
    return metrics


def update_policy(run: Run, batch: RolloutBatch, step: int, *, kl_coef: float) -> dict[str, float]:
    """`plan.ppo_epochs` passes over the kept rows in `plan.mini_batches` optimizer steps each; `kl_coef` is this
    step's beta (the KL controller's)."""
    plan = run.plan
    rows = torch.nonzero(batch.keep).flatten()
    rl_coef, source_sft_weight = run.source.loss_weights(step)
    # algorithm.sft_coef scales the SFT term on top of the source's own weight (CHORD: (1-mu)*RL + mu*sft_coef*SFT).
    sft_coef = source_sft_weight * run.config.algorithm.sft_coef
    if _all_reduce(torch.tensor([len(rows)]))[0] == 0:
        # Nothing carries signal (every group dropped): an optimizer step would still move the weights through
        # AdamW's momentum and weight decay, so none is taken.
        return {"loss/skipped_update": 1.0, "perf/lr": run.scheduler.get_last_lr()[0]}
    weights = StepWeights(rl=rl_coef, sft=sft_coef, kl=kl_coef)
    learner = run.learner
    generator = torch.Generator().manual_seed(run.config.train.seed * 100003 + step)
    totals: dict[str, float] = {}
    updates = 0
    for _ in range(plan.ppo_epochs):
        order = rows[torch.randperm(len(rows), generator=generator)] if plan.mini_batches > 1 else rows
        for mini in torch.tensor_split(order, plan.mini_batches):
            parts = update_mini_batch(learner, batch, mini, plan.loss, weights, step=step)
            updates += 1
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value
    keys = sorted(totals)
    reduced = _all_reduce(torch.tensor([totals[k] for k in keys], dtype=torch.float64))
    metrics = {k: reduced[i].item() / updates for i, k in enumerate(keys)}
    if "perf/grad_norm" in metrics:  # identical on every process; undo the sum
        metrics["perf/grad_norm"] /= run.world
    metrics["loss/rl_coef"], metrics["loss/sft_coef"] = rl_coef, sft_coef
    metrics["perf/lr"] = run.scheduler.get_last_lr()[0]
    return metrics


def train_step(run: Run, step: int) -> dict[str, Any]:
    config, algorithm = run.config, run.config.algorithm
    metrics: dict[str, Any] = {"step": step}
    start = time.perf_counter()
    indices = run.sampler.next_batch()[run.rank :: run.world]
    samples, skipped = decode_samples(run, [run.train_rows[i] for i in indices])
    ctx = StepContext(run.policy, run.backend, run.sampling, step, run.task.accuracy_reward, [r.name for r in run.rewards])
    # A frozen vision tower encodes each image once per step; the old-policy, reference and update passes reuse it.
    with reuse_vision_features([run.unwrapped, run.reference], enabled=config.model.reuse_vision_features) as encodes:
        with timed(metrics, "perf/rollout_s"):
            batch = run.source.collect(ctx, samples, run.policy.encode_prompts(samples))
        # Each phase, the experience source's hooks included, returns its tensors and the step passes them on in a new
        # batch (`replace`); nothing writes into the batch it is given.
        with timed(metrics, "perf/score_s"):
            parts, scored = score_batch(batch, run.rewards, on_error=algorithm.reward_errors)
            metrics.update(scored)
            batch = replace(batch, reward_parts=parts)
            batch, source_metrics = run.source.after_rewards(ctx, batch)
            metrics.update(source_metrics)
            batch = replace(batch, rewards=total_reward(batch.reward_parts, run.rewards, len(batch)))
        metrics.update(reward_metrics(batch, run.rewards))
        with timed(metrics, "perf/logprob_s"):
            if run.plan.old_logprobs_pass:
                batch = replace(batch, old_logprobs=batched_logprobs(run.model, batch, run, reference=False))
                if batch.sampling_logprobs is not None:
                    policy_rows = batch.rows_of(RowKind.POLICY)
                    diff = (batch.old_logprobs - batch.sampling_logprobs.nan_to_num(0.0)).abs() * batch.completion_mask
                    metrics["rollout/logprob_mismatch"] = float(diff[policy_rows].sum() / batch.completion_mask[policy_rows].sum().clamp(min=1))
            if run.plan.reference_logprobs_pass:
                batch = replace(batch, ref_logprobs=batched_logprobs(run.model, batch, run, reference=True))
        if algorithm.kl_in_reward and batch.ref_logprobs is not None:
            current = batch.old_logprobs if batch.old_logprobs is not None else batched_logprobs(run.model, batch, run, reference=False)
            rewards, penalty = penalise_kl_in_reward(batch, current, estimator=algorithm.kl_estimator, coef=run.kl_controller.coef)
            metrics.update(penalty)
            batch = replace(batch, rewards=rewards)
        advantages, keep, advantage_metrics = compute_advantages(batch, algorithm)
        metrics.update(advantage_metrics)
        batch = replace(batch, advantages=advantages, keep=keep)
        batch, source_metrics = run.source.after_advantages(ctx, batch)
        metrics.update(source_metrics)
        if run.diagnostics is not None:  # entropy, KL to the warm start, flat groups: on the policy that sampled
            metrics.update(run.diagnostics.step_metrics(run, batch, step))
        kl_coef = 0.0
        if run.plan.loss.kl is not None:
            kl_coef = metrics["loss/kl_coef"] = run.kl_controller.coef
        with timed(metrics, "perf/update_s"):
            metrics.update(update_policy(run, batch, step, kl_coef=kl_coef))
    metrics["perf/vision_encodes"] = float(encodes.calls)
    metrics["rollout/sequences"] = float(int(batch.rows_of(RowKind.POLICY).sum()) * run.world)
    # The controller reads this step's metrics and returns its own (None: nothing to log); beta moves for the next step.
    metrics.update(run.kl_controller.update(metrics) or {})
    with timed(metrics, "perf/sync_s"):
        run.backend.sync_weights(run.unwrapped)
    metrics["data/skipped_rows"] = skipped
    metrics["perf/step_s"] = time.perf_counter() - start
    return metrics


# -- evaluation -----------------------------------------------------------------------------------
@torch.no_grad()
def heldout_accuracy(run: Run) -> float:
    """Greedy decoding on the held-out split, scored by the task's accuracy reward, across processes."""
    rows = list(run.heldout_rows)[run.rank :: run.world]
    evaluate_policy = getattr(run.task, "evaluate_policy", None)
    if callable(evaluate_policy):
        # Tasks that act in an environment score the policy there (World-Env: success in the ground-truth env).
        total, count = evaluate_policy(run.policy, run.backend, rows, rank=run.rank, world=run.world)
    else:
        reward = next((r for r in run.rewards if r.name == run.task.accuracy_reward), None)
        from mmpost.registry import REWARDS

        scored = len(rows)
        padded = same_count_on_every_rank(len(rows), needed=run.plan.sharded)
        if padded > len(rows):  # repeat rows (not scored) so every rank generates the same batches
            filler = rows or list(run.heldout_rows)[:1]
            rows = rows + [filler[i % len(filler)] for i in range(padded - len(rows))]
        total, count = score_heldout(
            run.policy, run.backend, rows, decode=lambda batch_rows: decode_samples(run, batch_rows)[0],
            accuracy_fn=reward.function if reward else REWARDS.get(run.task.accuracy_reward),
            accuracy_args=reward.args if reward else {}, batch_size=run.config.eval.batch_size,
            max_new_tokens=run.config.eval.max_new_tokens or run.sampling.max_new_tokens, scored=scored)
    totals = _all_reduce(torch.tensor([float(total), float(count)], dtype=torch.float64))
    return (totals[0] / totals[1]).item() if totals[1] > 0 else float("nan")


@torch.no_grad()
def score_heldout(policy, backend, rows: Sequence[dict], *, decode, accuracy_fn, accuracy_args: dict | None = None,
                  max_new_tokens: int, batch_size: int, scored: int | None = None) -> tuple[float, int]:
    """Greedy completions of `rows` from `backend`, scored by `accuracy_fn(outputs, samples, **accuracy_args)`, in
    batches of `batch_size`: (sum of the scores, number of rows scored) on this process. `decode(rows)` turns rows
    into samples (the modality's decode); only the first `scored` rows count (the rest only keep ranks in step);
    a None score is left out. Needs no `Run`: `heldout_accuracy` is this plus the cross-process mean."""
    params = SamplingParams(n=1, greedy=True, max_new_tokens=max_new_tokens)
    scored = len(rows) if scored is None else scored
    wants_ids = "completion_ids" in inspect.signature(accuracy_fn).parameters
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        samples = decode(rows[start : start + batch_size])
        if not samples:
            continue
        result = backend.generate(policy.encode_prompts(samples), samples, params)
        outputs = result.outputs if result.outputs is not None else \
            [policy.vocabulary.tokenizer.decode(ids, skip_special_tokens=True) for ids in result.completion_ids]
        extra = {"completion_ids": [list(ids) for ids in result.completion_ids]} if wants_ids else {}
        values = accuracy_fn(outputs, samples, **(accuracy_args or {}), **extra)
        values = values[: max(0, scored - start)]
        total += sum(float(v) for v in values if v is not None)
        count += sum(1 for v in values if v is not None)
    return total, count


def periodic_evaluation(run: Run) -> dict[str, float]:
    """Held-out accuracy of the task, and the configured benchmarks scored as their official scorers do."""
    metrics: dict[str, float] = {}
    if run.heldout_rows:
        metrics[f"eval/{run.task.name}/accuracy"] = heldout_accuracy(run)
    if run.config.eval.benchmarks:
        import importlib

        # Resolved by name so the engine never imports the harness statically.
        harness = importlib.import_module("mmpost.eval.in_training")
        metrics.update(harness.evaluate_during_training(
            run.unwrapped, run.policy.processor, list(run.config.eval.benchmarks), dict(run.config.eval.benchmark_data),
            limit=run.config.eval.benchmark_limit, max_new_tokens=run.config.eval.max_new_tokens or run.sampling.max_new_tokens,
            batch_size=run.config.eval.batch_size, score_args=dict(run.config.eval.score_args)))
    return metrics


# -- the run --------------------------------------------------------------------------------------
def _checkpoint(run: Run, step: int, config_yaml: str) -> Path:
    run.state.update(step=step, scheduler=run.scheduler.state_dict(), sampler=run.sampler.state_dict(),
                     kl_controller=run.kl_controller.state_dict(), skipped_rows=dict(run.skipped_rows))
    return save_checkpoint(run.output_dir, step, model=run.unwrapped, processor=run.policy.processor, optimizer=run.optimizer,
                           trainer_state=run.state, config_yaml=config_yaml, is_main=run.is_main, rank=run.rank,
                           keep=run.config.train.keep_checkpoints, barrier=run.accelerator.wait_for_everyone)


def _resume(run: Run, folder: Path) -> int:
    state = json.loads((folder / "trainer_state.json").read_text())

    if run.config.distributed.strategy.startswith("deepspeed"):
        raise NotImplementedError(f"{folder}: resuming under DeepSpeed is not supported: DeepSpeed's own checkpoints are "
                                  "pickled (torch.save), which mmpost never loads; resume with ddp or fsdp2, or start anew "
                                  "from the checkpoint's model/ folder (model.path=...)")
    if run.config.model.lora.enabled:
        load_model_weights(run.unwrapped, folder)
    if sharding(run.model) == "fsdp2":
        load_sharded_state(folder / "sharded", run.unwrapped, run.optimizer, run.rank)
    else:
        optimizer_state_from_files(run.optimizer, folder)
    run.scheduler.load_state_dict(state["scheduler"])
    run.sampler.load_state_dict(state["sampler"])
    run.kl_controller.load_state_dict(state["kl_controller"])
    rng_state_from_files(folder, run.rank)
    state.pop("saved_at", None)
    run.state = state
    run.skipped_rows.update(state.get("skipped_rows", {}))
    run.metrics.truncate_after(state["step"])
    return int(state["step"])


def train(config: Config) -> dict[str, Any]:
    """Run a recipe; returns the summary (also written to `<output_dir>/summary.json`).

    Before any model loads, every config check runs (`builder.validate`, shared with `mmpost validate`), the output
    folder is claimed (`mmpost.run_dir`: another run's checkpoints and metrics are never overwritten or pruned) and a
    resumed config is compared with its checkpoint's. Signals are handled for the whole run (`_StopSignals`); a
    failure's traceback goes to `<output_dir>/train.log`.
    """
    with _StopSignals() as signals:
        signals.phase = "while checking the config"
        validate(config)
        with claim_output_dir(config) as start, run_log(start.output_dir, _rank()) as log_file:
            try:
                return _run(config, start, signals)
            except KeyboardInterrupt as interrupt:
                signum = int(getattr(interrupt, "signum", 0) or signals.signum or signal.SIGINT)
                how = "a second signal" if signals.count > 1 else signal.Signals(signum).name
                message = f"{how} stopped the run {signals.phase}; {last_checkpoint_text(start.output_dir)}"
                append_to_log(log_file, f"interrupted: {message}")
                raise RunInterrupted(message, signum) from None
            except Exception as error:
                log_failure(log_file, error)
                raise


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _run(config: Config, start: RunStart, signals: "_StopSignals") -> dict[str, Any]:
    signals.phase = "while loading the model and data (before the first step; nothing to resume)"
    policy_path = str(start.resume_from / "model") if start.resume_from and not config.model.lora.enabled else None
    run = build_run(config, policy_path=policy_path)
    run.diagnostics = RunDiagnostics(run)
    run.state["run_id"] = start.run_id
    config_yaml = __import__("yaml").safe_dump(to_dict(config), sort_keys=False)
    if run.is_main:
        save_config(config, run.output_dir / "config.yaml")
    first_step = 1
    started = time.perf_counter()
    if start.resume_from:
        first_step = _resume(run, start.resume_from) + 1
        run.state.setdefault("run_id", start.run_id)
        apply_resumed_settings(run.optimizer, run.scheduler, config, start.changes, run.state, first_step)
        log.info("resumed run %s from %s at step %d", run.state.get("run_id"), start.resume_from, first_step)
    elif config.eval.heldout and run.heldout_rows:
        signals.phase = "during the held-out evaluation before the first step (nothing to resume)"
        run.state["heldout_accuracy_before"] = heldout_accuracy(run)
        run.state.update(_prefixed(run.diagnostics.heldout_sampling(run, _heldout_decode(run)), "heldout_", "_before"))
    progress = _progress(run, first_step)
    run.metrics.trackers = Trackers.start(run.accelerator, config, to_dict(config))  # train.report_to
    last = first_step - 1
    for step in range(first_step, config.train.steps + 1):
        signals.defer(f"during step {step} (step {step} was not saved)")
        try:
            metrics = train_step(run, step)
        except RolloutBackendError as error:
            progress(None)
            raise RolloutBackendError(f"step {step}: {error} -- nothing was written for this step; "
                                      f"{last_checkpoint_text(run.output_dir)}") from error
        every = config.eval.every_n_steps
        if every and step % every == 0:
            # A first signal here stops the evaluation at once (one process); the finished step is still saved below.
            with signals.interruptible(f"during the evaluation after step {step}"):
                metrics.update(periodic_evaluation(run))
        run.metrics.write(metrics)
        progress(metrics)
        last = step
        signals.defer(f"while writing the checkpoint of step {step}")
        if signals.requested(run) and step < config.train.steps:
            # The step in flight finished; its checkpoint is consistent, and resume=auto continues after it.
            progress(None)
            checkpoint = _checkpoint(run, step, config_yaml)
            log.warning("%s received: stopped after step %d, checkpoint %s (continue with train.resume=auto)",
                        signals.name, step, checkpoint)
            run.metrics.close(step=step)
            return {"interrupted_at": step, "signal": signals.name, "checkpoint": str(checkpoint)}
        if config.train.save_every and step % config.train.save_every == 0 and step < config.train.steps:
            _checkpoint(run, step, config_yaml)
        if config.train.stop_after and step >= config.train.stop_after:
            progress(None)
            run.metrics.close(step=step)
            return {"stopped_at": step}
    progress(None)
    signals.defer(f"while writing the final checkpoint (step {last})")
    summary: dict[str, Any] = {"steps": last, "seconds": time.perf_counter() - started + run.state.get("seconds", 0.0)}
    run.state["seconds"] = summary["seconds"]
    # The final checkpoint comes before the final evaluation, so an interrupt there loses no training.
    final = _checkpoint(run, last, config_yaml)
    if config.eval.heldout and run.heldout_rows:
        summary["heldout_accuracy_before"] = run.state.get("heldout_accuracy_before")
        if signals.requested(run):
            summary["signal"] = signals.name  # asked to stop: the final evaluation is skipped
        else:
            with signals.interruptible("during the final held-out evaluation (training finished and was saved)"):
                summary["heldout_accuracy_after"] = heldout_accuracy(run)
                summary.update({k: v for k, v in run.state.items() if k.startswith("heldout_") and k.endswith("_before")})
                summary.update(_prefixed(run.diagnostics.heldout_sampling(run, _heldout_decode(run)), "heldout_", "_after"))
            if signals.name:
                summary["signal"] = signals.name
    if run.skipped_rows:
        summary["skipped_rows"] = len(run.skipped_rows)
    summary.update(output_dir=str(run.output_dir), metrics=str(run.metrics.path), checkpoint=str(final),
                   curves=str(run.output_dir / "curves.png"))
    records = run.metrics.read()
    if records:
        summary["seconds_per_step"] = sum(r["perf/step_s"] for r in records) / len(records)
    if run.is_main:
        if records:
            title = curves_title(run=config.train.run_name or run.output_dir.resolve().name, method=config.algorithm.source,
                                 task=run.task.name, model=Path(config.model.path).name or config.model.path, steps=last)
            plot_curves(records, run.output_dir / "curves.png", title=title,
                        heldout={"before": summary.get("heldout_accuracy_before"),
                                 "after": summary.get("heldout_accuracy_after"), "name": run.task.name})
        (run.output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        run.metrics.close(step=last, summary=summary, files={"curves": run.output_dir / "curves.png",
                                                             "summary": run.output_dir / "summary.json",
                                                             "config": run.output_dir / "config.yaml"})
    run.accelerator.wait_for_everyone()
    return summary


class _StopSignals:
    """SIGTERM/SIGINT handling for the whole run.

    During a step (and while a checkpoint is written) a first signal asks the loop to stop after the step: the step
    finishes, its checkpoint is written and the run returns. Where nothing would be lost by stopping at once (loading,
    the evaluation before training, an evaluation with one process), a first signal raises `RunInterrupted` there.
    A second signal always stops at once. Every process must stop at the same step, so a request is reduced over
    processes.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        self.signum: int | None = None
        self.count = 0
        self.phase = "before the run started"
        # What a first signal does: "run" stops the run at once, "evaluation" cuts the evaluation short, None waits
        # for the end of the step.
        self._first_stops: str | None = "run"
        self._previous: dict = {}
        # With several processes an evaluation is collective: stopping one process inside it would hang the others.
        self._single_process = int(os.environ.get("WORLD_SIZE", "1")) == 1

    def __enter__(self) -> "_StopSignals":
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def defer(self, phase: str) -> None:
        """From here a first signal only asks to stop after the current step."""
        self.phase, self._first_stops = phase, None

    @contextlib.contextmanager
    def interruptible(self, phase: str):
        """An evaluation that a first signal may cut short (one process); the run then stops at the next safe point."""
        previous = (self.phase, self._first_stops)
        self.phase, self._first_stops = phase, "evaluation" if self._single_process else None
        try:
            if self.name is not None and self._first_stops:
                raise _EvaluationStopped()
            yield
        except _EvaluationStopped:
            log.warning("%s: stopped %s", self.name, phase)
        finally:
            self.phase, self._first_stops = previous

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.name is not None:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise RunInterrupted("second signal", signum)
        self.name, self.signum = signal.Signals(signum).name, signum
        if self._first_stops == "evaluation":
            raise _EvaluationStopped()
        if self._first_stops == "run":
            raise RunInterrupted(self.name, signum)

    def requested(self, run: Run) -> bool:
        flag = torch.tensor([1 if self.name else 0])
        flag = _all_reduce(flag, op=torch.distributed.ReduceOp.MAX if torch.distributed.is_initialized() else None)
        if flag.item() and self.name is None:
            self.name = "signal on another process"
        return bool(flag.item())

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _heldout_decode(run: Run):
    return lambda rows: decode_samples(run, rows)[0]


def _prefixed(values: dict[str, float], prefix: str, suffix: str) -> dict[str, float]:
    return {f"{prefix}{key}{suffix}": value for key, value in values.items()}


class _EvaluationStopped(Exception):
    """A first signal during an evaluation that may be cut short (caught by `_StopSignals.interruptible`)."""


def _progress(run: Run, first_step: int):
    """A tqdm bar on the main process showing reward and loss."""
    if not (run.is_main and run.config.train.progress):
        return lambda metrics: None
    from tqdm.auto import tqdm

    bar = tqdm(total=run.config.train.steps, initial=first_step - 1, desc=f"{run.config.algorithm.source}", unit="step")

    def update(metrics):
        if metrics is None:
            bar.close()
            return
        reward = metrics.get("reward/mean")
        shown = {"reward": f"{reward:.3f}"} if reward is not None and reward == reward else {}  # SFT has no reward
        bar.set_postfix(**shown, loss=f"{metrics.get('loss/total', 0.0):.4f}")
        bar.update(1)

    return update
