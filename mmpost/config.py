"""Typed configuration: nested dataclasses are the single source of truth.

YAML files only set values; `key.sub=value` overrides come from the command line. An unknown key is an
error that names the key, the file and the closest valid name.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmpost.registry import closest_names


class ConfigError(ValueError):
    """A config that cannot be loaded: unknown key, wrong type, or an invalid value."""


def opt(default: Any, doc: str) -> Any:
    """A dataclass field with a one-line description (shown by `mmpost validate --explain`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def sub(cls: type, doc: str) -> Any:
    return field(default_factory=cls, metadata={"doc": doc})


@dataclass
class LoraConfig:
    enabled: bool = opt(False, "train a LoRA adapter through PEFT instead of all weights")
    r: int = opt(8, "LoRA rank")
    alpha: int = opt(16, "LoRA alpha")
    dropout: float = opt(0.0, "LoRA dropout")
    target_modules: Any = opt("all-linear", "PEFT target_modules: 'all-linear' or a list of module names")


@dataclass
class ModelConfig:
    path: str = opt("", "model folder or hub id; loaded through transformers' Auto classes")
    zoo: str | None = opt(None, "if set and `path` does not exist, build this zoo model there first")
    dtype: str = opt("float32", "float32 | bfloat16 | float16")
    trust_remote_code: bool = opt(False, "allow custom model code from the checkpoint (off unless you set it)")
    attn_implementation: str | None = opt(None, "eager | sdpa | flash_attention_2; None = transformers' default")
    freeze_vision: bool = opt(False, "freeze the vision tower")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass")
    reference: str = opt("auto", "auto | copy | adapter_disabled | none: where reference log-probs come from")
    policy: str = opt("token", "policy kind: token (transformers models that emit tokens) | denoising (flow/diffusion "
                               "generators sampled as an SDE); see `mmpost list policy`")
    reuse_vision_features: bool = opt(True, "with a frozen vision tower, encode each image/video once per step and reuse "
                                            "the features in the old-policy, reference and update passes")
    lora: LoraConfig = sub(LoraConfig, "LoRA settings")


@dataclass
class DataConfig:
    task: str = opt("shapes", "registered task name or 'package.module:Class'")
    task_args: dict = opt({}, "keyword arguments for the task (paths, sizes, seeds, kinds)")
    modality_args: dict = opt({}, "keyword arguments for the task's modality adapter (e.g. max_pixels)")
    prompts_per_step: int = opt(8, "prompts per optimizer step (across all processes)")
    shuffle: bool = opt(True, "shuffle the training rows each epoch")
    skip_bad_rows: bool = opt(False, "skip rows whose media or fields are broken, and report the count")
    heldout_size: int | None = opt(None, "cap on held-out rows used for evaluation")


@dataclass
class RolloutConfig:
    backend: str = opt("hf", "rollout backend: hf (transformers generate) | vllm")
    num_generations: int = opt(8, "G: completions sampled per prompt")
    temperature: float = opt(1.0, "sampling temperature (also applied when re-scoring log-probs)")
    top_p: float = opt(1.0, "nucleus sampling")
    top_k: int = opt(0, "top-k sampling, 0 = off")
    max_new_tokens: int = opt(32, "maximum completion length in tokens")
    backend_args: dict = opt({}, "extra keyword arguments for the rollout backend")


@dataclass
class RewardSpec:
    name: str = opt("", "registered reward name or 'package.module:function'")
    weight: float = opt(1.0, "weight in the total reward")
    args: dict = opt({}, "keyword arguments passed to the reward")


@dataclass
class AlgorithmConfig:
    source: str = opt("on_policy", "experience source: on_policy | visurf | chord | hpt | sft")
    source_args: dict = opt({}, "options of the experience source")
    advantage: str = opt("grpo", "advantage estimator: grpo | dr_grpo | rloo | reinforce_pp | flow_grpo")
    advantage_args: dict = opt({}, "options of the estimator (eps, scale)")
    drop_zero_variance_groups: bool = opt(False, "drop groups whose rewards are all equal (DAPO dynamic sampling)")
    policy_loss: str = opt("ppo_clip", "policy loss: ppo_clip | gspo | gppo | reinforce")
    policy_loss_args: dict = opt({}, "options of the policy loss (clip_low, clip_high, dual_clip_c)")
    aggregation: str = opt("token_mean", "loss aggregation: token_mean | seq_mean_token_mean | seq_mean_token_sum | seq_mean_token_sum_norm")
    kl_coef: float = opt(0.0, "beta: weight of the KL to the reference model (0 = no reference model)")
    kl_estimator: str = opt("k3", "k1 | k2 | k3")
    kl_controller: str = opt("fixed", "how beta evolves: fixed | adaptive | adversarial (GuirlVG)")
    kl_controller_args: dict = opt({}, "options of the KL controller")
    kl_in_reward: bool = opt(False, "fold beta * sequence KL into the reward instead of the loss")
    sft_loss: str = opt("cross_entropy", "loss for demonstration rows: cross_entropy | dft | chord_phi | asft")
    sft_loss_args: dict = opt({}, "options of the SFT loss")
    sft_coef: float = opt(1.0, "weight of the SFT loss term")
    ppo_epochs: int = opt(1, "passes over each rollout batch")
    mini_batches: int = opt(1, "optimizer steps per pass: the rollout batch is split into this many mini-batches")
    micro_batch_size: int = opt(16, "rows per forward/backward (gradient accumulation inside a mini-batch)")
    reward_errors: str = opt("raise", "raise | zero: a reward that raises stops the run, or scores 0 and is counted")
    logprob_pass: str = opt("auto", "how log-prob/update passes lay out rows: padded | packed (padding-free, token-budget "
                                    "micro-batches) | shared_prefix (each group's prompt computed once) | auto (shared_prefix, "
                                    "or padded with sharded weights: fsdp2, deepspeed_zero3)")
    token_budget: int | None = opt(None, "packed passes: tokens per micro-batch (None = micro_batch_size rows' worth)")
    tis_cap: float | None = opt(None, "truncated importance sampling: weight each RL token by min(pi_old/pi_rollout, cap) "
                                      "when the rollout engine's log-probs differ from the trainer's (None = off)")


@dataclass
class OptimConfig:
    lr: float = opt(1e-5, "AdamW learning rate")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    betas: list = opt([0.9, 0.999], "AdamW betas")
    eps: float = opt(1e-8, "AdamW epsilon")
    max_grad_norm: float = opt(1.0, "gradient clipping norm (0 = off)")
    scheduler: str = opt("constant", "transformers scheduler name: constant | constant_with_warmup | linear | cosine")
    warmup_steps: int = opt(0, "scheduler warm-up steps")


@dataclass
class TrainConfig:
    steps: int = opt(20, "optimizer steps (rollout batches)")
    seed: int = opt(0, "seed for data order, sampling and initialisation")
    output_dir: str = opt("runs/default", "where config, metrics, checkpoints and curves are written")
    save_every: int = opt(0, "checkpoint every N steps (0 = only at the end)")
    keep_checkpoints: int = opt(2, "how many step checkpoints to keep (0 = all)")
    resume: str | None = opt(None, "auto (latest in output_dir) | a checkpoint folder | None")
    threads: int | None = opt(None, "torch CPU threads (None = torch's default)")
    progress: bool = opt(True, "show a progress bar")
    report_to: list | str = opt([], "experiment trackers, through accelerate: tensorboard | wandb | mlflow | comet_ml | aim | "
                                    "clearml | dvclive | swanlab | trackio, a list or comma-separated; all = every installed "
                                    "one; [] = metrics.jsonl only")
    project: str = opt("mmpost", "tracker project (W&B/Comet/Trackio project, MLflow experiment, TensorBoard subfolder)")
    run_name: str | None = opt(None, "run name shown by the trackers (None = the output folder's name)")
    tracker_args: dict = opt({}, "per-tracker init keyword arguments, e.g. {wandb: {entity: my-team, tags: [grpo]}}")
    stop_after: int | None = opt(None, "stop (as if killed) after this many steps; for resume tests")


@dataclass
class EvalConfig:
    heldout: bool = opt(True, "measure held-out accuracy before and after training")
    every_n_steps: int = opt(0, "also evaluate every N steps (0 = off)")
    max_new_tokens: int | None = opt(None, "generation length for evaluation (None = rollout.max_new_tokens)")
    batch_size: int = opt(32, "prompts per evaluation batch")
    benchmarks: list = opt([], "benchmarks evaluated every `every_n_steps` (names from `mmpost list benchmark`)")
    benchmark_data: dict = opt({}, "benchmark name -> data folder (official format)")
    benchmark_limit: int | None = opt(None, "items per benchmark during training (None = all)")
    score_args: dict = opt({}, "benchmark name -> scorer options (e.g. screenspot: {coords: resized_pixels})")


@dataclass
class DistributedConfig:
    strategy: str = opt("auto", "auto | ddp | fsdp2 | deepspeed_zero2 | deepspeed_zero3 (all through accelerate); "
                                "launch with torchrun / accelerate launch for several processes")
    cpu: bool = opt(True, "allow running on CPU when no GPU is present")
    cpu_offload: bool = opt(False, "fsdp2 / deepspeed_zero3: keep parameters (and optimizer state) on the CPU")
    accelerate_config: str | None = opt(None, "an accelerate config YAML (e.g. recipes/accelerate/fsdp2.yaml) whose plugin "
                                              "settings are used; `strategy` must agree with it")


@dataclass
class Config:
    model: ModelConfig = sub(ModelConfig, "the policy model")
    data: DataConfig = sub(DataConfig, "task and data")
    rollout: RolloutConfig = sub(RolloutConfig, "sampling")
    rewards: list = opt([], "list of {name, weight, args}; empty = the task's default rewards")
    algorithm: AlgorithmConfig = sub(AlgorithmConfig, "advantages, losses, experience source")
    optim: OptimConfig = sub(OptimConfig, "optimizer and schedule")
    train: TrainConfig = sub(TrainConfig, "loop length, seed, output, checkpoints")
    eval: EvalConfig = sub(EvalConfig, "held-out evaluation")
    distributed: DistributedConfig = sub(DistributedConfig, "multi-process settings")

    def reward_specs(self) -> list[RewardSpec]:
        return [r if isinstance(r, RewardSpec) else _build(RewardSpec, r, "rewards") for r in self.rewards]


# -- loading ---------------------------------------------------------------------------------------
def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a recipe YAML (or start from defaults), apply `key.sub=value` overrides, and type-check."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: recipe file not found") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key.sub=value")
        _set_path(raw, key.strip().split("."), yaml.safe_load(value) if value.strip() else None)
    try:
        return _build(Config, raw, "")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def config_from_dict(raw: dict) -> Config:
    return _build(Config, raw, "")


def to_dict(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, description, default) for every field, for documentation and `--explain`."""
    rows = []
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(type(value), f"{prefix}{f.name}.")
        else:
            rows.append((prefix + f.name, f.metadata.get("doc", ""), value))
    return rows


def _set_path(raw: dict, keys: list[str], value: Any) -> None:
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{'.'.join(keys)}': '{k}' is not a section")
    node[keys[-1]] = value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"'{where or 'config'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in names]
    if unknown:
        key = unknown[0]
        hint = closest_names(key, names)
        full = f"{where}.{key}" if where else key
        raise ConfigError(
            f"unknown key '{full}'" + (f"; did you mean '{(where + '.') if where else ''}{hint[0]}'?" if hint else "")
            + f" Valid keys here: {sorted(names)}"
        )
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"'{where}': invalid value {value!r}")
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-6" as a string
        except ValueError:
            pass
    base = origin or hint
    if base in (list, dict, str, int, bool) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"'{where}' expects {getattr(hint, '__name__', hint)}, got {value!r}")
