"""Building a run from a config: task, modality, model, reference, optimizer, rollout backend, data.

Everything is resolved through registries by name, so the engine imports no modality or task.
"""
from __future__ import annotations

import inspect
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mmpost.config import Config, ConfigError, RewardSpec, check_paths, check_values, located, origin_of
from mmpost.data import PromptSampler
from mmpost.experience import ExperienceSource
from mmpost.metrics import MetricsLog
from mmpost.model import build_reference, ensure_model_folder, prepare_policy
from mmpost.registry import EXPERIENCE_SOURCES, KL_CONTROLLERS, MODALITIES, POLICIES, ROLLOUT_BACKENDS, TASKS
from mmpost.rollout.base import RolloutBackend, SamplingParams
from mmpost.scoring import BoundReward, bind_rewards
from mmpost.types import Modality, PolicyKind, Task
from mmpost.logprobs import LOGPROB_LAYOUTS, LogprobPlan
from mmpost.update import Learner, LossSettings

log = logging.getLogger(__name__)


@dataclass
class Run:
    config: Config
    accelerator: Any
    task: Task
    modality: Modality
    policy: PolicyKind  # mmpost.policy.TokenPolicy, mmpost.denoising.DenoisingPolicy, a plugin's
    model: torch.nn.Module  # prepared (possibly DDP-wrapped)
    reference: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    backend: RolloutBackend
    train_rows: Sequence[dict]
    heldout_rows: Sequence[dict]
    sampler: PromptSampler
    rewards: list[BoundReward]
    source: ExperienceSource
    plan: RunPlan
    sampling: SamplingParams
    metrics: MetricsLog
    output_dir: Path
    kl_controller: Any = None
    state: dict = field(default_factory=dict)
    diagnostics: Any = None  # mmpost.diagnostics.RunDiagnostics, set by the trainer
    skipped_rows: dict[str, str] = field(default_factory=dict)  # row (file:line or id) -> why it was skipped

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    @property
    def settings(self) -> LossSettings:
        return self.plan.loss

    @property
    def learner(self) -> Learner:
        return Learner(self.accelerator, self.model, self.reference, self.optimizer, self.scheduler, self.plan.max_grad_norm)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_accelerator(config: Config):
    """The accelerate `Accelerator` for `distributed.strategy` (DDP, FSDP2, DeepSpeed ZeRO-2/3)."""
    from mmpost import distributed

    return distributed.make_accelerator(config)


def resolve_logprob_layout(config: Config, policy_kind: Any = None) -> tuple[str, str]:
    """`algorithm.logprob_pass` resolved, and why: "auto" is shared_prefix, or padded with sharded weights (which need
    the same number of forwards on every rank; packed and shared-prefix passes do not guarantee it, so asking for
    them there is an error). A policy kind that declares fewer layouts (`logprob_layouts`; the denoising policy
    has one) runs its first. The config is not changed."""
    requested = config.algorithm.logprob_pass
    strategy = config.distributed.strategy
    sharded = strategy in ("fsdp2", "deepspeed_zero3")
    if sharded and requested not in ("auto", "padded"):
        raise ConfigError(f"algorithm.logprob_pass={requested!r} can run a different number of forward "
                          f"passes on each process, which sharded weights ({strategy}) cannot allow: "
                          "use algorithm.logprob_pass=padded", key="algorithm.logprob_pass")
    layouts = tuple(policy_kind.logprob_layouts) if policy_kind is not None else LOGPROB_LAYOUTS
    if len(layouts) == 1:
        return layouts[0], f"model.policy={config.model.policy!r} has one layout"
    if requested != "auto":
        return requested, "algorithm.logprob_pass"
    if sharded:
        return "padded", f"auto; sharded weights ({strategy}) need the same forward count on every rank"
    return "shared_prefix", "auto"


@dataclass(frozen=True)
class RunPlan:
    """The run's decisions, made once by `plan_run` from the config and the prepared model, then only read: the
    loss (`LossSettings`, with the log-prob passes' layout), the update schedule, whether the weights are sharded
    and which extra log-prob passes a step runs. `decisions` says what was chosen where a choice was made (logged)."""

    loss: LossSettings
    ppo_epochs: int
    mini_batches: int
    max_grad_norm: float
    sharded: bool  # every forward gathers weights collectively: equal forward counts on every rank
    needs_reference: bool  # a reference model exists (KL, or an SFT loss that reads the reference distribution)
    old_logprobs_pass: bool  # several updates per batch: the old policy's log-probs are computed before them
    reference_logprobs_pass: bool  # the KL uses reference log-probs of the batch's tokens
    decisions: tuple[str, ...] = ()


def plan_run(config: Config, policy: Any, model: torch.nn.Module, *, needs_reference: bool) -> RunPlan:
    """Every run-long decision below the loop, once (see `RunPlan`)."""
    from mmpost.distributed import is_sharded
    from mmpost.model import unwrap

    algorithm = config.algorithm
    layout, why = resolve_logprob_layout(config, type(policy))
    checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in unwrap(model).modules())
    passes = LogprobPlan.decide(layout, micro_batch_size=algorithm.micro_batch_size, token_budget=algorithm.token_budget,
                                temperature=config.rollout.temperature, gradient_checkpointing=checkpointing, why=why)
    loss = LossSettings.from_config(algorithm, config.rollout, policy, passes)
    return RunPlan(
        loss=loss, ppo_epochs=algorithm.ppo_epochs, mini_batches=algorithm.mini_batches,
        max_grad_norm=config.optim.max_grad_norm, sharded=is_sharded(model), needs_reference=needs_reference,
        old_logprobs_pass=algorithm.ppo_epochs > 1 or algorithm.mini_batches > 1,
        reference_logprobs_pass=needs_reference and algorithm.kl_coef > 0 and not loss.kl_from_policy,
        decisions=(f"log-prob passes: {passes.decision}",),
    )


def build_task(config: Config):
    """The task object from `data.task` and `data.task_args`; options it does not take, or lacks, are a ConfigError
    naming them (not a TypeError from deep inside the constructor)."""
    task_class = TASKS.get(config.data.task)
    if not isinstance(task_class, type):
        return task_class
    args = dict(config.data.task_args)
    label = f"task {config.data.task!r}"
    try:
        signature = inspect.signature(task_class)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        accepted = [name for name, p in signature.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = [name for name in args if name not in accepted]
        if unknown:
            hint = "; the row-skipping switch is data.skip_bad_rows" if "skip_bad_rows" in unknown else ""
            raise ConfigError(f"data.task_args: {label} does not take {unknown} (it takes {accepted}){hint}; when "
                              "switching data.task, replace the recipe's task_args whole: data.task_args='{path: ...}'",
                              key="data.task_args")
        missing = [name for name, p in signature.parameters.items()
                   if p.default is p.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in args]
        if missing:
            raise ConfigError(f"data.task_args.{missing[0]}: {label} needs it (data.task_args holds {sorted(args)})",
                              key="data.task_args")
    try:
        return task_class(**args)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"data.task_args: {label}: {error}", key="data.task_args") from error


def build_modality(config: Config, task) -> Any:
    modality = MODALITIES.get(task.modality)
    return modality(**config.data.modality_args) if isinstance(modality, type) else modality


def reward_specs(config: Config, task) -> list[RewardSpec]:
    specs = config.reward_specs()
    if specs:
        return specs
    return [RewardSpec(name=r["name"], weight=float(r.get("weight", 1.0)), args=dict(r.get("args", {})))
            for r in task.default_rewards]


def load_split(task, split: str, config: Config, skipped: list[str] | None = None) -> Sequence[dict]:
    """A split's rows. With `data.skip_bad_rows` a task whose `load` takes `skip_bad_rows` drops rows with missing
    fields or unreadable lines; each reason is logged and appended to `skipped`."""
    accepts_skip = "skip_bad_rows" in inspect.signature(task.load).parameters
    try:
        rows = task.load(split, **({"skip_bad_rows": config.data.skip_bad_rows} if accepts_skip else {}))
    except ConfigError as error:
        raise located(config, error) from None
    for reason in getattr(rows, "skipped", None) or []:
        log.warning("skipping row (%s split): %s", split, reason)
        if skipped is not None:
            skipped.append(reason)
    if split != "train" and config.data.heldout_size is not None:
        rows = rows[: config.data.heldout_size]
    return rows


def build_run(config: Config, *, policy_path: str | None = None) -> Run:
    """Everything a training run needs; `policy_path` loads the policy weights from a checkpoint folder."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    resolve_logprob_layout(config, POLICIES.get(config.model.policy))  # a layout sharding cannot run fails before loading
    accelerator = make_accelerator(config)
    seed_everything(config.train.seed + accelerator.process_index)
    task = build_task(config)
    modality = build_modality(config, task)

    model_path = ensure_model_folder(config.model) if accelerator.is_main_process else config.model.path
    accelerator.wait_for_everyone()
    policy_kind = POLICIES.get(config.model.policy)
    processor = policy_kind.load_processor(model_path, trust_remote_code=config.model.trust_remote_code)
    algorithm = config.algorithm
    needs_reference = algorithm.kl_coef > 0 or bool(getattr(_sft_loss(config), "needs_full_distribution", False))
    base = policy_kind.load_model(config.model, model_path)
    reference = None
    if needs_reference and not config.model.lora.enabled:
        reference = build_reference(base, config.model, needed=True)  # the initial weights, also on resume
    if policy_path and not config.model.lora.enabled:
        base = policy_kind.load_model(config.model, policy_path)
    model = prepare_policy(base, config.model)
    if needs_reference and config.model.lora.enabled:
        reference = build_reference(model, config.model, needed=True)
    if reference is not None:
        reference.to(accelerator.device)
    model.train()

    optim = config.optim
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=optim.lr,
                                  betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay)
    from transformers import get_scheduler

    updates = config.train.steps * algorithm.ppo_epochs * algorithm.mini_batches
    scheduler = get_scheduler(optim.scheduler, optimizer, num_warmup_steps=optim.warmup_steps, num_training_steps=max(updates, 1))
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)

    policy = policy_kind(unwrapped, processor, task, modality)
    plan = plan_run(config, policy, model, needs_reference=needs_reference)
    for decision in plan.decisions:
        log.info("%s", decision)
    backend_class = ROLLOUT_BACKENDS.get(config.rollout.backend)
    # One set of arguments for every backend: the model, the policy kind (its `vocabulary` for token samplers) and
    # the backend's typed options (`rollout.backend_args`, checked by `check_plugin_options`).
    backend = backend_class(unwrapped, policy=policy, **config.rollout.backend_args)
    source_class = EXPERIENCE_SOURCES.get(algorithm.source)
    source = source_class(**algorithm.source_args)

    skipped: list[str] = []
    train_rows = load_split(task, "train", config, skipped)
    heldout_rows = load_split(task, "heldout", config, skipped) if config.eval.heldout or config.eval.every_n_steps else []
    if config.data.prompts_per_step % accelerator.num_processes:
        raise ValueError(f"data.prompts_per_step={config.data.prompts_per_step} must be divisible by the "
                         f"{accelerator.num_processes} processes")
    sampler = PromptSampler(len(train_rows), config.data.prompts_per_step, seed=config.train.seed, shuffle=config.data.shuffle)
    r = config.rollout
    sampling = SamplingParams(n=r.num_generations, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              max_new_tokens=r.max_new_tokens)
    output_dir = Path(config.train.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    return Run(
        config=config, accelerator=accelerator, task=task, modality=modality, policy=policy, model=model,
        reference=reference, optimizer=optimizer, scheduler=scheduler,
        backend=backend, train_rows=train_rows, heldout_rows=heldout_rows, sampler=sampler,
        rewards=bind_rewards(reward_specs(config, task)), source=source,
        plan=plan, sampling=sampling,
        metrics=MetricsLog(output_dir / "metrics.jsonl", enabled=accelerator.is_main_process), output_dir=output_dir,
        kl_controller=KL_CONTROLLERS.get(algorithm.kl_controller)(algorithm.kl_coef, **algorithm.kl_controller_args),
        skipped_rows={reason: reason for reason in skipped},
    )


def _sft_loss(config: Config):
    from mmpost.registry import SFT_LOSSES

    return SFT_LOSSES.get(config.algorithm.sft_loss)


def validate(config: Config) -> list[str]:
    """Every check that needs no model: value ranges, names, options and their consistency. `mmpost validate` and
    `train` both run it, so a config that validates does not fail later for a reason visible here. Errors name the
    key, the value, what is allowed and where the value was set (recipe file or command line). Returns what was checked."""
    from mmpost.registry import ADVANTAGES, AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES, REWARDS, RegistryError, SFT_LOSSES

    checked = check_values(config)
    algorithm = config.algorithm
    try:
        for key, registry, name in [
                ("algorithm.advantage", ADVANTAGES, algorithm.advantage), ("algorithm.policy_loss", POLICY_LOSSES, algorithm.policy_loss),
                ("algorithm.aggregation", AGGREGATIONS, algorithm.aggregation), ("algorithm.kl_estimator", KL_ESTIMATORS, algorithm.kl_estimator),
                ("algorithm.sft_loss", SFT_LOSSES, algorithm.sft_loss), ("algorithm.source", EXPERIENCE_SOURCES, algorithm.source),
                ("algorithm.kl_controller", KL_CONTROLLERS, algorithm.kl_controller),
                ("rollout.backend", ROLLOUT_BACKENDS, config.rollout.backend), ("data.task", TASKS, config.data.task),
                ("model.policy", POLICIES, config.model.policy)]:
            try:
                registry.get(name)
            except RegistryError as error:
                raise RegistryError(f"{origin_of(config).where(key)}: {key}: {error}") from None
            checked.append(f"{registry.kind}: {name}")
        task = build_task(config)
        MODALITIES.get(task.modality)
        checked.append(f"modality: {task.modality}")
        for split in ["train"] + (["heldout"] if config.eval.heldout or config.eval.every_n_steps else []):
            check_split = getattr(task, "check_split", None)
            if callable(check_split):
                check_split(split)
        for spec in reward_specs(config, task):
            REWARDS.get(spec.name)
            checked.append(f"reward: {spec.name} (weight {spec.weight})")
        from mmpost.distributed import resolve_strategy

        resolve_strategy(config.distributed)
        checked.append(f"distributed: {config.distributed.strategy}")
        layout, why = resolve_logprob_layout(config, POLICIES.get(config.model.policy))
        checked.append(f"log-prob passes: {layout} ({why})")
        checked += check_plugin_options(config)
        checked += _check_groups(config)
        backend_check = getattr(ROLLOUT_BACKENDS.get(config.rollout.backend), "check_available", None)
        if callable(backend_check):
            try:
                backend_check()
            except Exception as error:  # noqa: BLE001 - any reason the backend cannot start here
                raise ConfigError(f"rollout.backend={config.rollout.backend!r}: {error}", key="rollout.backend") from None
        check_paths(config)
    except ConfigError as error:
        raise located(config, error) from None
    return checked


def plugin_options(config: Config) -> list[tuple[str, Any, str, dict]]:
    """(args key, registry, chosen name, given args) of every plugin whose options are typed (`Registry.options`):
    the algorithm's plugins, the rollout backend, the task's modality and each benchmark's scorer."""
    from mmpost.registry import ADVANTAGES, POLICY_LOSSES, SCORERS, SFT_LOSSES

    algorithm = config.algorithm
    chosen = [("algorithm.advantage_args", ADVANTAGES, algorithm.advantage, algorithm.advantage_args),
              ("algorithm.policy_loss_args", POLICY_LOSSES, algorithm.policy_loss, algorithm.policy_loss_args),
              ("algorithm.sft_loss_args", SFT_LOSSES, algorithm.sft_loss, algorithm.sft_loss_args),
              ("algorithm.source_args", EXPERIENCE_SOURCES, algorithm.source, algorithm.source_args),
              ("algorithm.kl_controller_args", KL_CONTROLLERS, algorithm.kl_controller, algorithm.kl_controller_args),
              ("rollout.backend_args", ROLLOUT_BACKENDS, config.rollout.backend, config.rollout.backend_args)]
    modality = getattr(TASKS.get(config.data.task), "modality", None) if config.data.task else None
    if isinstance(modality, str):
        chosen.append(("data.modality_args", MODALITIES, modality, config.data.modality_args))
    for benchmark, args in sorted(config.eval.score_args.items()):
        chosen.append((f"eval.score_args.{benchmark}", SCORERS, benchmark, args or {}))
    return chosen


def check_plugin_options(config: Config) -> list[str]:
    """Each chosen plugin's `*_args` checked against its typed options: an option it does not have (a typo), a
    missing required one or a value of the wrong type is a ConfigError naming the key and listing the options."""
    from mmpost.config import _build
    from mmpost.registry import describe_options

    checked = []
    for key, registry, name, args in plugin_options(config):
        options = registry.options(name)
        try:
            _build(options, dict(args), key)
        except ConfigError as error:
            listed = "; ".join(f"{option}: {text}" for option, text in describe_options(options)) or "no options"
            raise ConfigError(f"{error} ({registry.kind} {name!r} takes: {listed})", key=key) from None
        except TypeError as error:  # a required option is missing
            listed = "; ".join(f"{option}: {text}" for option, text in describe_options(options)) or "no options"
            raise ConfigError(f"{key}: {registry.kind} {name!r}: {error} (it takes: {listed})", key=key) from None
        checked.append(f"{key}: {sorted(args) or 'defaults'} checked against {registry.kind} {name!r}")
    return checked


def _check_groups(config: Config) -> list[str]:
    """A group-relative estimator compares each rollout with the others of its group; with one row per group every
    advantage is 0, so the policy loss and its gradient are 0 on every step. The estimator is probed on two singleton
    groups, so a plugin estimator with a batch baseline passes."""
    from mmpost.registry import ADVANTAGES

    algorithm = config.algorithm
    source_class = EXPERIENCE_SOURCES.get(algorithm.source)
    if not getattr(source_class, "groups_from_num_generations", True):
        return []
    rows_per_group = config.rollout.num_generations + int(getattr(source_class, "extra_group_rows", 0))
    estimator = ADVANTAGES.get(algorithm.advantage)
    try:
        probe = estimator(torch.tensor([1.0, 0.0]), torch.tensor([0, 1]), **algorithm.advantage_args)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"algorithm.advantage_args={algorithm.advantage_args!r}: estimator {algorithm.advantage!r} "
                          f"rejects them: {error}", key="algorithm.advantage_args") from None
    if rows_per_group < 2 and bool((probe == 0).all()):
        raise ConfigError(
            f"rollout.num_generations={config.rollout.num_generations} with algorithm.advantage={algorithm.advantage!r} "
            f"(source {algorithm.source!r}): the estimator compares each rollout with the others of its prompt's group, "
            "so a group of one gets advantage 0 and the loss and gradient are 0 on every step; allowed: "
            "rollout.num_generations >= 2", key="rollout.num_generations")
    return [f"groups: {rows_per_group} rows per prompt"]
