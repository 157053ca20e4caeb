"""Typed configuration: nested dataclasses are the single source of truth.

YAML files only set values; `key.sub=value` overrides come from the command line. An unknown key is an
error that names the key, the file and the closest valid name.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmpost.registry import closest_names


class ConfigError(ValueError):
    """A config that cannot be loaded: unknown key, wrong type, or an invalid value.

    `key` is the dotted key at fault (when there is one), so the message can name where it was set.
    """

    def __init__(self, message: str, *, key: str | None = None, secret: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.secret = secret  # the value is a credential: never echo it back
        self.located = False  # the message already says where the value was set


@dataclass(frozen=True)
class Allowed:
    """The values a field accepts: a numeric range and/or a set of choices. None is accepted where the field's
    type allows None (that is checked by the type, not here)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low < value instead of low <= value
    high_open: bool = False
    choices: tuple = ()

    def problem(self, value: Any) -> str | None:
        if self.choices:
            return None if value in self.choices else f"allowed: {' | '.join(map(str, self.choices))}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # the type check reports non-numbers
        if not math.isfinite(value):
            return f"must be a finite number {self.describe()}".strip()
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self.describe()}" if below or above else None

    def describe(self) -> str:
        if self.choices:
            return "one of " + " | ".join(map(str, self.choices))
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)


def at_least(low: float) -> Allowed:
    return Allowed(low=low)


def above(low: float) -> Allowed:
    return Allowed(low=low, low_open=True)


def one_of(*choices: str) -> Allowed:
    return Allowed(choices=tuple(choices))


def opt(default: Any, doc: str, *, allowed: Allowed | None = None, resumable: bool = False) -> Any:
    """A dataclass field with a one-line description (shown by `mmpost validate --explain`).

    `allowed` is checked by `check_values` (shared by `mmpost validate` and `train`). `resumable` marks a key that
    may change when a run is resumed (learning rate, cadence, ...); every other key must equal the checkpoint's.
    """
    metadata = {"doc": doc, "allowed": allowed, "resumable": resumable}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return field(default=default, metadata=metadata)


def sub(cls: type, doc: str) -> Any:
    return field(default_factory=cls, metadata={"doc": doc})


@dataclass
class LoraConfig:
    enabled: bool = opt(False, "train a LoRA adapter through PEFT instead of all weights")
    r: int = opt(8, "LoRA rank", allowed=at_least(1))
    alpha: int = opt(16, "LoRA alpha", allowed=above(0))
    dropout: float = opt(0.0, "LoRA dropout", allowed=Allowed(low=0, high=1, high_open=True))
    target_modules: Any = opt("all-linear", "PEFT target_modules: 'all-linear' or a list of module names")


@dataclass
class ModelConfig:
    path: str = opt("", "model folder or hub id; loaded through transformers' Auto classes")
    zoo: str | None = opt(None, "if set and `path` does not exist, build this zoo model there first")
    dtype: str = opt("float32", "float32 | bfloat16 | float16", allowed=one_of("float32", "bfloat16", "float16"))
    trust_remote_code: bool = opt(False, "allow custom model code from the checkpoint (off unless you set it)")
    attn_implementation: str | None = opt(None, "eager | sdpa | flash_attention_2; None = transformers' default", resumable=True)
    freeze_vision: bool = opt(False, "freeze the vision tower")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass", resumable=True)
    reference: str = opt("auto", "auto | copy | adapter_disabled | none: where reference log-probs come from",
                         allowed=one_of("auto", "copy", "adapter_disabled", "none"))
    policy: str = opt("token", "policy kind: token (transformers models that emit tokens) | denoising (flow/diffusion "
                               "generators sampled as an SDE); see `mmpost list policy`")
    reuse_vision_features: bool = opt(True, "with a frozen vision tower, encode each image/video once per step and reuse "
                                            "the features in the old-policy, reference and update passes", resumable=True)
    lora: LoraConfig = sub(LoraConfig, "LoRA settings")


@dataclass
class DataConfig:
    task: str = opt("shapes", "registered task name or 'package.module:Class'")
    task_args: dict = opt({}, "keyword arguments for the task (paths, sizes, seeds, kinds)")
    modality_args: dict = opt({}, "keyword arguments for the task's modality adapter (e.g. max_pixels)")
    prompts_per_step: int = opt(8, "prompts per optimizer step (across all processes)", allowed=at_least(1))
    shuffle: bool = opt(True, "shuffle the training rows each epoch")
    skip_bad_rows: bool = opt(False, "skip rows whose media or fields are broken (each logged with its reason, counted in "
                                     "data/skipped_rows) instead of stopping the run", resumable=True)
    heldout_size: int | None = opt(None, "cap on held-out rows used for evaluation", allowed=at_least(0), resumable=True)
    media_root: str | None = opt(None, "folder every media path of a data file must lie in (None = the data file's own "
                                       "folder and below)", resumable=True)
    allow_media_outside_root: bool = opt(False, "accept media paths anywhere (absolute, ../) instead of only under the "
                                                "media root", resumable=True)


@dataclass
class RolloutConfig:
    backend: str = opt("hf", "rollout backend: hf (transformers generate) | vllm", resumable=True)
    num_generations: int = opt(8, "G: completions sampled per prompt", allowed=at_least(1))
    temperature: float = opt(1.0, "sampling temperature (also applied when re-scoring log-probs)", allowed=above(0))
    top_p: float = opt(1.0, "nucleus sampling", allowed=Allowed(low=0, high=1, low_open=True))
    top_k: int = opt(0, "top-k sampling, 0 = off", allowed=at_least(0))
    max_new_tokens: int = opt(32, "maximum completion length in tokens", allowed=at_least(1))
    backend_args: dict = opt({}, "extra keyword arguments for the rollout backend", resumable=True)


@dataclass
class RewardSpec:
    name: str = opt("", "registered reward name or 'package.module:function'")
    weight: float = opt(1.0, "weight in the total reward", allowed=Allowed())
    args: dict = opt({}, "keyword arguments passed to the reward")


@dataclass
class AlgorithmConfig:
    source: str = opt("on_policy", "experience source: on_policy | visurf | chord | hpt | sft")
    source_args: dict = opt({}, "options of the experience source")
    advantage: str = opt("grpo", "advantage estimator: grpo | dr_grpo | rloo | reinforce_pp | flow_grpo")
    advantage_args: dict = opt({}, "options of the estimator (eps, scale); grpo's eps 1e-6 is verl's, TRL's is {eps: 1e-4}")
    drop_zero_variance_groups: bool = opt(False, "drop groups whose rewards are all equal (DAPO dynamic sampling)")
    policy_loss: str = opt("ppo_clip", "policy loss: ppo_clip | gspo | gppo | cispo | sapo | reinforce (unclipped)")
    policy_loss_args: dict = opt({}, "options of the policy loss (clip_low, clip_high, dual_clip_c)")
    aggregation: str = opt("token_mean", "loss aggregation: token_mean | seq_mean_token_mean | seq_mean_token_sum | "
                                         "seq_mean_token_sum_norm (Dr.GRPO) | token_sum_norm (verl seq-mean-token-sum-norm, HPT)")
    norm_constant: int | None = opt(None, "the constant C of seq_mean_token_sum_norm and token_sum_norm (None = "
                                          "rollout.max_new_tokens, the padded response width the references divide by)",
                                    allowed=at_least(1))
    kl_coef: float = opt(0.0, "beta: weight of the KL to the reference model (0 = no reference model)", allowed=at_least(0))
    kl_estimator: str = opt("k3", "k1 | k2 | k3 (clamped as verl's low_var_kl) | k3_unclamped (TRL's k3)")
    kl_controller: str = opt("fixed", "how beta evolves: fixed | adaptive | adversarial (GuirlVG)")
    kl_controller_args: dict = opt({}, "options of the KL controller")
    kl_in_reward: bool = opt(False, "fold beta * sequence KL into the reward instead of the loss")
    kl_importance_weighted: bool = opt(False, "multiply the loss's per-token KL by the importance ratio pi/pi_old (TRL's "
                                              "use_bias_correction_kl, on by default in TRL; DeepSeek-V3.2)")
    sft_loss: str = opt("cross_entropy", "loss for demonstration rows: cross_entropy | dft | sa_dft | chord_phi | asft")
    sft_loss_args: dict = opt({}, "options of the SFT loss")
    sft_coef: float = opt(1.0, "weight of the SFT loss term; multiplies the source's own SFT weight (CHORD: mu)",
                          allowed=at_least(0))
    ppo_epochs: int = opt(1, "passes over each rollout batch", allowed=at_least(1))
    mini_batches: int = opt(1, "optimizer steps per pass: the rollout batch is split into this many mini-batches",
                            allowed=at_least(1))
    micro_batch_size: int = opt(16, "rows per forward/backward (gradient accumulation inside a mini-batch)",
                                allowed=at_least(1), resumable=True)
    reward_errors: str = opt("raise", "raise | zero: a reward that raises or returns NaN/inf stops the run, or scores 0 and "
                                       "is counted in reward/errors", allowed=one_of("raise", "zero"), resumable=True)
    logprob_pass: str = opt("auto", "how log-prob/update passes lay out rows: padded | packed (padding-free, token-budget "
                                    "micro-batches) | shared_prefix (each group's prompt computed once) | auto (shared_prefix, "
                                    "or padded with sharded weights: fsdp2, deepspeed_zero3)",
                              allowed=one_of("auto", "padded", "packed", "shared_prefix"), resumable=True)
    token_budget: int | None = opt(None, "packed passes: tokens per micro-batch (None = micro_batch_size rows' worth)",
                                   allowed=at_least(1), resumable=True)
    tis_cap: float | None = opt(None, "truncated importance sampling: weight each RL token by min(pi_old/pi_rollout, cap) "
                                      "when the rollout engine's log-probs differ from the trainer's (None = off)",
                                allowed=above(0))


@dataclass
class OptimConfig:
    lr: float = opt(1e-5, "AdamW learning rate", allowed=at_least(0), resumable=True)
    weight_decay: float = opt(0.0, "AdamW weight decay", allowed=at_least(0), resumable=True)
    betas: list = opt([0.9, 0.999], "AdamW betas (two numbers in [0, 1))", resumable=True)
    eps: float = opt(1e-8, "AdamW epsilon", allowed=above(0), resumable=True)
    max_grad_norm: float = opt(1.0, "gradient clipping norm (0 = off)", allowed=at_least(0), resumable=True)
    scheduler: str = opt("constant", "transformers scheduler name: constant | constant_with_warmup | linear | cosine",
                         resumable=True)
    warmup_steps: int = opt(0, "scheduler warm-up steps", allowed=at_least(0), resumable=True)


@dataclass
class TrainConfig:
    steps: int = opt(20, "optimizer steps (rollout batches)", allowed=at_least(1), resumable=True)
    seed: int = opt(0, "seed for data order, sampling and initialisation", allowed=at_least(0))
    output_dir: str = opt("runs/default", "where config, metrics, checkpoints and curves are written", resumable=True)
    save_every: int = opt(0, "checkpoint every N steps (0 = only at the end)", allowed=at_least(0), resumable=True)
    keep_checkpoints: int = opt(2, "how many of this run's step checkpoints to keep, newest first (0 = all); "
                                          "another run's checkpoints are never pruned", allowed=at_least(0), resumable=True)
    resume: str | None = opt(None, "auto (latest in output_dir, or a fresh start when there is none) | a checkpoint "
                                   "folder | None", resumable=True)
    overwrite_output_dir: bool = opt(False, "start a new run in an output_dir that holds another run's checkpoints or "
                                            "metrics (its checkpoints are kept, never pruned; its metrics are replaced)",
                                     resumable=True)
    threads: int | None = opt(None, "torch CPU threads (None = torch's default)", allowed=at_least(1), resumable=True)
    progress: bool = opt(True, "show a progress bar", resumable=True)
    report_to: list | str = opt([], "experiment trackers, through accelerate: tensorboard | wandb | mlflow | comet_ml | aim | "
                                    "clearml | dvclive | swanlab | trackio, a list or comma-separated; all = every installed "
                                    "one; [] = metrics.jsonl only", resumable=True)
    project: str = opt("mmpost", "tracker project (W&B/Comet/Trackio project, MLflow experiment, TensorBoard subfolder)",
                       resumable=True)
    run_name: str | None = opt(None, "run name shown by the trackers (None = the output folder's name)", resumable=True)
    tracker_args: dict = opt({}, "per-tracker init keyword arguments, e.g. {wandb: {entity: my-team, tags: [grpo]}}",
                             resumable=True)
    stop_after: int | None = opt(None, "stop (as if killed) after this many steps; for resume tests", allowed=at_least(1),
                                  resumable=True)


@dataclass
class EvalConfig:
    heldout: bool = opt(True, "measure held-out accuracy before and after training", resumable=True)
    every_n_steps: int = opt(0, "also evaluate every N steps (0 = off)", allowed=at_least(0), resumable=True)
    max_new_tokens: int | None = opt(None, "generation length for evaluation (None = rollout.max_new_tokens)",
                                      allowed=at_least(1), resumable=True)
    batch_size: int = opt(32, "prompts per evaluation batch", allowed=at_least(1), resumable=True)
    benchmarks: list = opt([], "benchmarks evaluated every `every_n_steps` (names from `mmpost list benchmark`)", resumable=True)
    benchmark_data: dict = opt({}, "benchmark name -> data folder (official format)", resumable=True)
    benchmark_limit: int | None = opt(None, "items per benchmark during training (None = all)", allowed=at_least(1),
                                       resumable=True)
    score_args: dict = opt({}, "benchmark name -> scorer options (e.g. screenspot: {coords: resized_pixels})", resumable=True)


@dataclass
class DistributedConfig:
    strategy: str = opt("auto", "auto | ddp | fsdp2 | deepspeed_zero2 | deepspeed_zero3 (all through accelerate); "
                                "launch with torchrun / accelerate launch for several processes")
    cpu: bool = opt(True, "allow running on CPU when no GPU is present", resumable=True)
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
    """Read a recipe YAML (or start from defaults), apply `key.sub=value` overrides, and type-check.

    Errors name where the offending value was set: the recipe file, or the command-line override.
    """
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
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    origin = ConfigOrigin(file=None if path is None else source)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"command line: override '{item}' is not of the form key.sub=value")
        key = key.strip()
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"command line: override '{item}': the value is not valid YAML ({error})") from None
        origin.overrides[key] = item
        try:
            _set_path(raw, key.split("."), parsed)
        except ConfigError as error:
            raise ConfigError(f"command line: {error}") from None
    try:
        config = _build(Config, raw, "")
    except ConfigError as error:
        located_error = ConfigError(f"{origin.where(error.key)}: {error}", key=error.key)
        located_error.located = True
        raise located_error from None
    object.__setattr__(config, "_origin", origin)
    return config


@dataclass
class ConfigOrigin:
    """Where a loaded config's values came from: a recipe file and `key=value` overrides, for error messages."""

    file: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # dotted key -> the command-line item that set it

    def where(self, key: str | None, *, show_value: bool = True) -> str:
        """'command line (optim.lr=-1)' when an override set `key` (or a section holding it), else the file."""
        if key:
            parts = key.split(".")
            for end in range(len(parts), 0, -1):
                item = self.overrides.get(".".join(parts[:end]))
                if item is not None:
                    return f"command line ({item if show_value else item.partition('=')[0] + '=...'})"
        return self.file or "config"


def origin_of(config: Config) -> ConfigOrigin:
    return getattr(config, "_origin", None) or ConfigOrigin(file="the Python config")


def located(config: Config, error: ConfigError) -> ConfigError:
    """`error` with the place its key was set (recipe file or command line) in front (once)."""
    if error.located:
        return error
    where = origin_of(config).where(error.key, show_value=not error.secret)
    located_error = ConfigError(f"{where}: {error}", key=error.key, secret=error.secret)
    located_error.__cause__ = error.__cause__
    located_error.located = True
    return located_error


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
    """Write the resolved config atomically (a crash leaves the old file or the new one, never half of one)."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    os.replace(staging, path)


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, description, default) for every field, for documentation and `--explain`."""
    rows = []
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(type(value), f"{prefix}{f.name}.")
        else:
            doc = f.metadata.get("doc", "")
            allowed = f.metadata.get("allowed")
            if allowed is not None and allowed.describe():
                doc += f" ({allowed.describe()})"
            if f.metadata.get("resumable"):
                doc += " [may change on resume]"
            rows.append((prefix + f.name, doc, value))
    return rows


# -- checks shared by `mmpost validate` and `train` -------------------------------------------------
def check_values(config: Config) -> list[str]:
    """Range checks of every field, reward specs and secrets; raises a ConfigError naming the key, the value, what is
    allowed, and where the value was set. Returns what was checked."""
    try:
        _check_fields(config, "")
        for index, spec in enumerate(config.reward_specs()):
            if not spec.name:
                raise ConfigError(f"rewards[{index}].name is empty: name a registered reward", key="rewards")
            _check_fields(spec, f"rewards[{index}]", key="rewards")
        if config.train.resume is not None and config.train.overwrite_output_dir:
            raise ConfigError(f"train.resume={config.train.resume!r} and train.overwrite_output_dir=true contradict each "
                              "other: resume continues the run in output_dir, overwrite starts a new one there; choose one",
                              key="train.overwrite_output_dir")
        betas = config.optim.betas
        if not (isinstance(betas, list) and len(betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise ConfigError(f"optim.betas={betas!r}: allowed: two numbers in [0, 1)", key="optim.betas")
        check_no_secrets(to_dict(config))
    except ConfigError as error:
        raise located(config, error) from None
    return ["values: ranges and consistency", "secrets: none in the config"]


def check_paths(config: Config) -> None:
    """The model folder is named and the media root, when set, is a folder (raises ConfigError naming the key)."""
    if not config.model.path:
        raise ConfigError("model.path is empty: set it to a model folder or hub id (or set model.zoo)", key="model.path")
    if config.data.media_root is not None and not Path(config.data.media_root).is_dir():
        raise ConfigError(f"data.media_root={config.data.media_root!r}: not a folder", key="data.media_root")


def _check_fields(node: Any, prefix: str, key: str | None = None) -> None:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        where = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value):
            _check_fields(value, where)
            continue
        allowed = f.metadata.get("allowed")
        if allowed is None or value is None:
            continue
        problem = allowed.problem(value)
        if problem:
            raise ConfigError(f"{where}={value!r}: {problem}", key=key or where)


# Setting names that carry credentials. Such values would be written to config.yaml and into every checkpoint, so they
# are refused: credentials come from the environment (e.g. a judge's `api_key_env`, HF_TOKEN for the hub).
_SECRET_KEY = re.compile(r"^(.*_)?(api_?key|secret|secret_key|secret_access_key|password|passwd|private_key|authorization)$"
                         r"|^((hf|access|auth|bearer|api|refresh|session|id)_)?token$", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
                           r"|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|Bearer\s+\S{8,})$"
                           r"|://[^/\s:@]+:[^/\s@]+@")


def check_no_secrets(raw: Any, where: str = "") -> None:
    """Refuse credential-bearing keys and values that look like API keys or tokens, anywhere in the config."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            path = f"{where}.{key}" if where else str(key)
            if _SECRET_KEY.match(str(key)) and value not in (None, ""):
                raise ConfigError(
                    f"{path}: credentials are not accepted in a config (it is written to config.yaml and every "
                    "checkpoint); put the secret in an environment variable and name the variable instead "
                    "(e.g. a judge's api_key_env; HF_TOKEN for the hub)", key=_top_key(path), secret=True)
            check_no_secrets(value, path)
    elif isinstance(raw, (list, tuple)):
        for index, value in enumerate(raw):
            check_no_secrets(value, f"{where}[{index}]")
    elif isinstance(raw, str) and _SECRET_VALUE.search(raw.strip()):
        raise ConfigError(
            f"{where}: the value looks like a credential (an API key, token or a password in a URL); a config is "
            "written to config.yaml and every checkpoint, so credentials must come from environment variables",
            key=_top_key(where), secret=True)


def _top_key(path: str) -> str:
    """The dotted key of a path like 'rewards[0].args.judge' (list indices dropped) for locating its origin."""
    return re.sub(r"\[\d+\]", "", path)


def field_metadata(key: str) -> dict:
    """The metadata of the config field holding dotted `key` (a key inside a dict field belongs to that field)."""
    node: Any = Config
    metadata: dict = {}
    for part in key.split("."):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            break
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return {}
        metadata = dict(fields[part].metadata)
        node = typing.get_type_hints(node)[part]
    return metadata


def flatten(raw: Any, prefix: str = "") -> dict[str, Any]:
    """{'optim.lr': 1e-3, 'data.task_args.path': ...}; lists stay whole values."""
    if isinstance(raw, dict) and (raw or not prefix):
        out: dict[str, Any] = {}
        for key, value in raw.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: raw}


def config_changes(before: dict, after: dict) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Keys whose values differ between two config dicts, split into (resumable, fixed) as `{key: (old, new)}`.
    Keys present on one side only (a config written by another mmpost version) are not compared."""
    old, new = flatten(before), flatten(after)
    old.pop("train.resume", None)  # how the run was started, not a setting of it
    resumable: dict[str, tuple] = {}
    fixed: dict[str, tuple] = {}
    for key in old.keys() & new.keys():
        if old[key] != new[key] and not _same_number(old[key], new[key]):
            (resumable if field_metadata(key).get("resumable") else fixed)[key] = (old[key], new[key])
    return dict(sorted(resumable.items())), dict(sorted(fixed.items()))


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)


def _set_path(raw: dict, keys: list[str], value: Any) -> None:
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{'.'.join(keys)}': '{k}' is not a section", key=".".join(keys))
    node[keys[-1]] = value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"'{where or 'config'}' must be a mapping, got {type(raw).__name__}", key=where or None)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in names]
    if unknown:
        key = unknown[0]
        hint = closest_names(str(key), names)
        full = f"{where}.{key}" if where else str(key)
        raise ConfigError(
            f"unknown key '{full}'" + (f"; did you mean '{(where + '.') if where else ''}{hint[0]}'?" if hint else "")
            + f" Valid keys here: {sorted(names)}", key=full
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
        raise ConfigError(errors[0] if errors else f"'{where}': invalid value {value!r}", key=where)
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
    raise ConfigError(f"'{where}' expects {getattr(hint, '__name__', hint)}, got {value!r}", key=where)
