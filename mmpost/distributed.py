"""Distributed training through accelerate: DDP, FSDP2 (full shard, optional CPU offload), DeepSpeed ZeRO-2/3.

`make_accelerator(config)` turns `config.distributed` (and, if named, an accelerate config YAML such as
`recipes/accelerate/fsdp2.yaml`) into an `Accelerator`. The strategy only changes how the prepared model
holds its weights; the loop, the losses and the update are the same code under every strategy.

FSDP2 checkpoints never go through pickle: every rank writes its local shards as safetensors plus a JSON
record of global shapes, placements and the world size (`save_sharded_state` / `load_sharded_state`), and
`full_model_state_dict` gathers a consolidated copy on rank 0 for a `from_pretrained`-loadable export.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
import yaml
from safetensors.torch import load_file, save_file

from mmpost.config import ConfigError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "ddp", "fsdp2", "deepspeed_zero2", "deepspeed_zero3")
SHARD_FORMAT = "mmpost-sharded-state/1"

# accelerate config keys (as `accelerate config` writes them) -> FullyShardedDataParallelPlugin arguments.
_FSDP_KEYS = {
    "fsdp_version": "fsdp_version",
    "fsdp_offload_params": "cpu_offload",
    "fsdp_reshard_after_forward": "reshard_after_forward",
    "fsdp_auto_wrap_policy": "auto_wrap_policy",
    "fsdp_transformer_layer_cls_to_wrap": "transformer_cls_names_to_wrap",
    "fsdp_min_num_params": "min_num_params",
    "fsdp_state_dict_type": "state_dict_type",
    "fsdp_cpu_ram_efficient_loading": "cpu_ram_efficient_loading",
    "fsdp_activation_checkpointing": "activation_checkpointing",
}
_DEEPSPEED_KEYS = {"zero_stage", "offload_optimizer_device", "offload_param_device", "zero3_init_flag",
                   "zero3_save_16bit_model", "gradient_accumulation_steps", "gradient_clipping", "deepspeed_config_file"}
_DDP_TYPES = {"NO", "MULTI_GPU", "MULTI_CPU", "MULTI_NPU", "MULTI_XPU", "MULTI_MLU", "MULTI_MUSA", "MULTI_HPU"}


# -- choosing a strategy --------------------------------------------------------------------------
@dataclass(frozen=True)
class StrategySettings:
    """A resolved `distributed` section: the strategy and the plugin options that apply to it."""

    strategy: str
    cpu_offload: bool = False
    fsdp: dict[str, Any] = field(default_factory=dict)  # FullyShardedDataParallelPlugin arguments from the file
    deepspeed: dict[str, Any] = field(default_factory=dict)  # accelerate `deepspeed_config` keys from the file
    mixed_precision: str | None = None
    source: str | None = None  # the accelerate config file these came from, for error messages


def read_accelerate_config(path: str | Path) -> dict[str, Any]:
    """The mapping in an accelerate config YAML; errors name the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: accelerate config file not found (distributed.accelerate_config)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an accelerate config must be a mapping (distributed_type, fsdp_config, ...)")
    return raw


def strategy_of_accelerate_config(raw: dict[str, Any], path: str | Path) -> str:
    """Which of `STRATEGIES` an accelerate config describes (its `distributed_type` and ZeRO stage / FSDP version)."""
    kind = str(raw.get("distributed_type", "NO")).upper()
    if kind in _DDP_TYPES:
        return "ddp"
    if kind == "FSDP":
        version = int((raw.get("fsdp_config") or {}).get("fsdp_version", 1))
        if version != 2:
            raise ConfigError(f"{path}: fsdp_config.fsdp_version={version}; only FSDP2 is supported (set fsdp_version: 2)")
        return "fsdp2"
    if kind == "DEEPSPEED":
        stage = _deepspeed_stage(raw.get("deepspeed_config") or {}, path)
        if stage not in (2, 3):
            raise ConfigError(f"{path}: deepspeed_config.zero_stage={stage}; supported stages are 2 and 3 "
                              "(strategies deepspeed_zero2 / deepspeed_zero3)")
        return f"deepspeed_zero{stage}"
    raise ConfigError(f"{path}: distributed_type {kind!r} is not supported; use MULTI_GPU / MULTI_CPU (ddp), "
                      "FSDP (fsdp2) or DEEPSPEED (deepspeed_zero2 / deepspeed_zero3)")


def _deepspeed_stage(section: dict[str, Any], path: str | Path) -> int:
    json_file = section.get("deepspeed_config_file")
    if json_file and json_file != "none":
        json_path = (Path(path).parent / json_file) if not Path(json_file).is_absolute() else Path(json_file)
        try:
            ds_json = json.loads(json_path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: deepspeed_config_file {json_file!r} cannot be read: {error}") from None
        return int(ds_json.get("zero_optimization", {}).get("stage", 0))
    return int(section.get("zero_stage", 0))


def launcher_strategy(environ: Any) -> tuple[str, bool] | None:
    """(strategy, cpu offload) that `accelerate launch --config_file ...` asked for through the environment, if any.

    Without this check a run launched with an FSDP/DeepSpeed accelerate config would silently follow the
    launcher while `distributed.strategy` said otherwise (accelerate builds its plugins from these variables).
    """
    if _truthy(environ.get("ACCELERATE_USE_DEEPSPEED", "false")):
        stage = environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "?")
        offload = any(_truthy(environ.get(f"ACCELERATE_DEEPSPEED_OFFLOAD_{k}_DEVICE", "none")) for k in ("OPTIMIZER", "PARAM"))
        if stage not in ("2", "3"):
            raise ConfigError(f"accelerate launch asked for DeepSpeed ZeRO stage {stage}; supported stages are 2 and 3")
        return f"deepspeed_zero{stage}", offload
    if _truthy(environ.get("ACCELERATE_USE_FSDP", "false")):
        if environ.get("FSDP_VERSION", "1") != "2":
            raise ConfigError(f"accelerate launch asked for FSDP version {environ.get('FSDP_VERSION', '1')}; "
                              "only FSDP2 is supported (fsdp_version: 2 in the accelerate config)")
        return "fsdp2", _truthy(environ.get("FSDP_OFFLOAD_PARAMS", "false"))
    return None


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "cpu")


def resolve_strategy(distributed: Any) -> StrategySettings:
    """Check `distributed.strategy` against the allowed names and against `distributed.accelerate_config`.

    A file and a strategy must agree; `strategy=auto` takes the file's. CPU offload is on when either
    `distributed.cpu_offload` or the file asks for it.
    """
    strategy = distributed.strategy
    if strategy not in STRATEGIES:
        raise ConfigError(f"distributed.strategy={strategy!r} is not one of {' | '.join(STRATEGIES)}")
    launched = launcher_strategy(os.environ)
    if launched is not None and strategy not in ("auto", launched[0]):
        raise ConfigError(f"`accelerate launch` was given a config for {launched[0]!r} (environment "
                          f"ACCELERATE_USE_FSDP / ACCELERATE_USE_DEEPSPEED) but distributed.strategy={strategy!r}; "
                          f"launch with a matching --config_file, or set distributed.strategy={launched[0]}")
    path = distributed.accelerate_config
    if not path:
        if strategy == "auto" and launched is not None:
            return StrategySettings(strategy=launched[0], cpu_offload=bool(distributed.cpu_offload) or launched[1],
                                    source="the accelerate launch environment")
        return StrategySettings(strategy=strategy, cpu_offload=bool(distributed.cpu_offload))
    raw = read_accelerate_config(path)
    described = strategy_of_accelerate_config(raw, path)
    if strategy not in ("auto", described):
        raise ConfigError(f"{path}: this accelerate config describes strategy {described!r} "
                          f"(distributed_type {raw.get('distributed_type')!r}) but distributed.strategy={strategy!r}; "
                          f"make them agree or set distributed.strategy=auto")
    fsdp, deepspeed, offload = {}, {}, bool(distributed.cpu_offload)
    if described == "fsdp2":
        section = raw.get("fsdp_config") or {}
        unknown = sorted(set(section) - set(_FSDP_KEYS))
        if unknown:
            raise ConfigError(f"{path}: fsdp_config keys {unknown} are not supported for FSDP2 (known: {sorted(_FSDP_KEYS)})")
        fsdp = {_FSDP_KEYS[k]: v for k, v in section.items() if k not in ("fsdp_version", "fsdp_offload_params")}
        offload = offload or _truthy(section.get("fsdp_offload_params", False))
    elif described.startswith("deepspeed"):
        section = raw.get("deepspeed_config") or {}
        unknown = sorted(set(section) - _DEEPSPEED_KEYS)
        if unknown:
            raise ConfigError(f"{path}: deepspeed_config keys {unknown} are not supported (known: {sorted(_DEEPSPEED_KEYS)})")
        deepspeed = dict(section)
        offload = offload or any(_truthy(section.get(k, "none")) for k in ("offload_optimizer_device", "offload_param_device"))
    mixed = raw.get("mixed_precision")
    return StrategySettings(strategy=described, cpu_offload=offload, fsdp=fsdp, deepspeed=deepspeed,
                            mixed_precision=None if mixed in (None, "no") else str(mixed), source=str(path))


# -- plugins --------------------------------------------------------------------------------------
def fsdp2_plugin(settings: StrategySettings):
    """FSDP2 full shard: every decoder layer (the model's `_no_split_modules`, e.g. `Qwen2_5_VLDecoderLayer`
    and `Qwen2_5_VLVisionBlock`) becomes its own shard group, then the root; parameters are re-sharded
    after each forward. CPU offload keeps sharded parameters, gradients and optimizer state in host memory."""
    from accelerate import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import CPUOffloadPolicy

    options: dict[str, Any] = {"reshard_after_forward": True, "auto_wrap_policy": "transformer_based_wrap",
                               "state_dict_type": "SHARDED_STATE_DICT", "cpu_ram_efficient_loading": False}
    options.update(settings.fsdp)
    if isinstance(options.get("auto_wrap_policy"), str):
        options["auto_wrap_policy"] = options["auto_wrap_policy"].lower()
    names = options.get("transformer_cls_names_to_wrap")
    if isinstance(names, str):
        options["transformer_cls_names_to_wrap"] = [n.strip() for n in names.split(",") if n.strip()]
    # Pinned host memory needs a CUDA driver; on a CPU-only machine offloading is a no-op move, unpinned.
    offload = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if settings.cpu_offload else False
    return FullyShardedDataParallelPlugin(fsdp_version=2, cpu_offload=offload, **options)


def deepspeed_plugin(settings: StrategySettings, *, micro_batch_size: int, max_grad_norm: float):
    """ZeRO-2 (optimizer state + gradients sharded) or ZeRO-3 (+ parameters), optionally offloaded to CPU.

    Gradient accumulation stays with the update loop (`gradient_sync` marks DeepSpeed's boundary), so
    DeepSpeed's own `gradient_accumulation_steps` is 1; `train_batch_size` stays "auto", which accelerate
    fills at `prepare` as micro batch x processes."""
    from accelerate import DeepSpeedPlugin

    stage = int(settings.strategy[-1])
    section = dict(settings.deepspeed)
    json_file = section.pop("deepspeed_config_file", None)
    if json_file and json_file != "none":
        path = Path(json_file) if Path(json_file).is_absolute() else Path(settings.source or ".").parent / json_file
        plugin = DeepSpeedPlugin(hf_ds_config=str(path))
    else:
        offload = "cpu" if settings.cpu_offload else "none"
        plugin = DeepSpeedPlugin(
            zero_stage=stage,
            gradient_accumulation_steps=1,
            gradient_clipping=float(section.get("gradient_clipping", max_grad_norm)) if max_grad_norm > 0 else None,
            offload_optimizer_device=section.get("offload_optimizer_device", offload),
            offload_param_device=section.get("offload_param_device", offload if stage == 3 else "none"),
            # The builder loads full weights on every rank before `prepare`; zero.Init would partition them at load.
            zero3_init_flag=_truthy(section.get("zero3_init_flag", False)),
            zero3_save_16bit_model=_truthy(section.get("zero3_save_16bit_model", stage == 3)),
        )
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = micro_batch_size
    ds["gradient_accumulation_steps"] = 1
    ds["train_batch_size"] = "auto"
    if settings.cpu_offload:
        # The optimizer is built by the loop (torch AdamW), not by DeepSpeed; allow it with offload.
        ds["zero_force_ds_cpu_optimizer"] = False
    return plugin


def accelerator_kwargs(config: Any, settings: StrategySettings | None = None) -> dict[str, Any]:
    """Keyword arguments for `Accelerator(...)` under `config.distributed` (no Accelerator is created)."""
    settings = settings or resolve_strategy(config.distributed)
    cpu = bool(config.distributed.cpu) and not torch.cuda.is_available()
    kwargs: dict[str, Any] = {"cpu": cpu}
    if settings.mixed_precision:
        kwargs["mixed_precision"] = settings.mixed_precision
    if settings.strategy == "fsdp2":
        kwargs["fsdp_plugin"] = fsdp2_plugin(settings)
    elif settings.strategy.startswith("deepspeed"):
        kwargs["deepspeed_plugin"] = deepspeed_plugin(settings, micro_batch_size=config.algorithm.micro_batch_size,
                                                      max_grad_norm=config.optim.max_grad_norm)
        if cpu:
            from accelerate.utils import InitProcessGroupKwargs

            # accelerate refuses DeepSpeed when told `cpu=True`; without it and without a GPU it finds no backend
            # and reports one process of rank 0 on every rank, while DeepSpeed runs its CPU accelerator over gloo.
            # Naming gloo gives accelerate the real ranks.
            kwargs["cpu"] = False
            kwargs["kwargs_handlers"] = [InitProcessGroupKwargs(backend="gloo")]
    elif settings.cpu_offload:
        raise ConfigError(f"distributed.cpu_offload=true needs strategy fsdp2 or deepspeed_zero2/3, "
                          f"not {settings.strategy!r}")
    from mmpost.trackers import accelerator_tracking_kwargs

    kwargs.update(accelerator_tracking_kwargs(config.train))  # train.report_to: accelerate's trackers
    return kwargs


def make_accelerator(config: Any):
    """The `Accelerator` for `config.distributed.strategy` (auto | ddp | fsdp2 | deepspeed_zero2 | deepspeed_zero3).

    Launch several processes with torchrun or `accelerate launch`; one plain process runs unsharded.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    settings = resolve_strategy(config.distributed)
    kwargs = accelerator_kwargs(config, settings)
    accelerator = Accelerator(**kwargs)
    if settings.strategy == "fsdp2" and accelerator.distributed_type == DistributedType.MULTI_CPU:
        # accelerate only enables FSDP on accelerator devices and silently falls back to DDP on CPU; FSDP2's
        # `fully_shard` itself works with gloo, so the state is switched to FSDP to shard for real. Both shared
        # states are set: every later `AcceleratorState()` re-copies the process state over its own.
        from accelerate.state import PartialState

        PartialState().distributed_type = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = kwargs["fsdp_plugin"]
    if settings.strategy != "auto" and settings.strategy != "ddp" and accelerator.distributed_type == DistributedType.NO:
        log.warning("distributed.strategy=%s needs several processes (torchrun / accelerate launch); one process "
                    "runs unsharded", settings.strategy)
    return accelerator


@contextlib.contextmanager
def gradient_sync(accelerator, model: torch.nn.Module, sync: bool) -> Iterator[None]:
    """Around one micro-batch's backward: `sync=False` accumulates locally (DDP `no_sync`, FSDP2
    `set_requires_gradient_sync(False)`); under DeepSpeed it marks the accumulation boundary instead, since
    there `accelerator.backward` steps the engine whenever gradients are synchronised."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        accelerator.gradient_state._set_sync_gradients(sync)
        try:
            yield
        finally:
            accelerator.gradient_state._set_sync_gradients(True)
    elif sync:
        yield
    else:
        with accelerator.no_sync(model):
            yield


# -- sharded weights: the one test, and what it asks of every rank --------------------------------------
def sharding(model: torch.nn.Module) -> str | None:
    """How the weights of `model` are split across processes: "fsdp2" (DTensor parameters), "zero3" (DeepSpeed
    ZeRO-3 partitioned parameters, which carry `ds_id`) or None (every process holds them whole)."""
    for parameter in model.parameters():
        if _is_dtensor(parameter):
            return "fsdp2"
        if hasattr(parameter, "ds_id"):
            return "zero3"
    return None


def is_sharded(model: torch.nn.Module) -> bool:
    """True when every forward of `model` gathers its weights with a collective (FSDP2 or ZeRO-3): then all ranks
    must run the same number of forwards (`same_count_on_every_rank`)."""
    return sharding(model) is not None


def same_count_on_every_rank(count: int, *, needed: bool = True) -> int:
    """How many forwards (or forward-backwards) this rank must run so that every rank runs as many: the busiest
    rank's `count` when `needed` (sharded weights gather collectively in every forward; DDP all-reduces in the
    last backward), else this rank's own. The extra ones repeat a row and are not counted; one process: `count`."""
    if not needed or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return count
    busiest = torch.tensor([count])
    dist.all_reduce(busiest, op=dist.ReduceOp.MAX)
    return int(busiest[0])


def needs_synced_generation(model: torch.nn.Module) -> bool:
    """True when the weights are sharded (`is_sharded`) and several processes run: then all ranks must take the
    same number of decoding steps, so HF `generate` needs `synced_gpus=True` (a rank whose sequences have
    finished keeps running forwards until every rank has finished)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    return is_sharded(model)


@contextlib.contextmanager
def sharded_generation(model: torch.nn.Module) -> Iterator[bool]:
    """Around HF `generate` on a possibly sharded model; yields the `synced_gpus` value to pass.

    Under FSDP2 the root group's weights (embeddings, the vision patch embedding and merger, the final norm)
    are gathered by the root's forward hook, but a VLM's `generate` runs the vision encoder (`get_image_features`)
    before the first root forward, on still-sharded DTensors ("got mixed torch.Tensor and DTensor"). The root
    is therefore gathered for the whole call and re-sharded after; wrapped layers gather themselves.
    """
    from torch.distributed.fsdp import FSDPModule

    synced = needs_synced_generation(model)
    if not isinstance(model, FSDPModule):
        yield synced
        return
    # FSDP2 picks its root at the first forward; a VLM's generate would first call the vision blocks, which
    # would then claim to be roots. Initialise from the real root before anything runs.
    model._get_fsdp_state()._lazy_init()
    model.unshard()
    try:
        yield synced
    finally:
        model.reshard()


# -- sharded state (FSDP2) without pickle ---------------------------------------------------------
def _describe(value: torch.Tensor) -> dict[str, Any]:
    from torch.distributed.tensor import DTensor

    record: dict[str, Any] = {"global_shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    if isinstance(value, DTensor):
        record["placements"] = _placements(value)
        record["local_shape"] = list(value.to_local().shape)
    return record


def _local(value: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    value = value.to_local() if isinstance(value, DTensor) else value
    # A clone: shards are views into FSDP's padded storage, which safetensors would refuse to share.
    return value.detach().to("cpu").clone().contiguous()


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_sharded_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                       rank: int | None = None) -> None:
    """Write this rank's model and optimizer shards to `folder` (every rank calls it, no collectives).

    Files: `model_rank<R>.safetensors` (local shards of the model's state dict), `optimizer_rank<R>.safetensors`
    (`<param index>.<key>` local shards of AdamW's moments) and `shards_rank<R>.json` (format, world size,
    global shape / dtype / placements of every tensor, optimizer param groups and non-tensor state).
    Each file is written under a temporary name and renamed, so a reader never sees half a file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    own_rank, world = _rank_and_world()
    rank = own_rank if rank is None else rank
    state = model.state_dict()
    meta: dict[str, Any] = {"format": SHARD_FORMAT, "world_size": world, "rank": rank,
                            "model": {k: _describe(v) for k, v in state.items()}}
    _atomic_save(folder / f"model_rank{rank}.safetensors", {k: _local(v) for k, v in state.items()})
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        tensors, described, scalars = {}, {}, {}
        for param_id, values in opt_state["state"].items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{param_id}.{key}"] = _local(value)
                    described[f"{param_id}.{key}"] = _describe(value)
                else:
                    scalars.setdefault(str(param_id), {})[key] = value
        _atomic_save(folder / f"optimizer_rank{rank}.safetensors", tensors)
        meta["optimizer"] = {"param_groups": opt_state["param_groups"], "scalars": scalars, "tensors": described}
    _atomic_text(folder / f"shards_rank{rank}.json", json.dumps(meta, indent=1))


def load_sharded_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                       rank: int | None = None) -> None:
    """Restore what `save_sharded_state` wrote, into a model prepared the same way with the same world size.

    Raises `ValueError` naming the file when the world size, a tensor's name, global shape, dtype or placement
    differs (a different world size needs the consolidated model plus a fresh optimizer instead).
    """
    folder = Path(folder)
    own_rank, world = _rank_and_world()
    rank = own_rank if rank is None else rank
    meta_path = folder / f"shards_rank{rank}.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no shard record for rank {rank} (was the checkpoint written by "
                                f"fewer than {world} processes, or by a strategy without shards?)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != SHARD_FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {SHARD_FORMAT!r}")
    if meta["world_size"] != world:
        raise ValueError(f"{meta_path}: written by {meta['world_size']} processes, resumed with {world}; sharded state "
                         f"needs the same world size (load the consolidated model and restart the optimizer instead)")
    model_file = folder / f"model_rank{rank}.safetensors"
    saved = load_file(str(model_file))
    targets = model.state_dict(keep_vars=True)
    _check_names(model_file, set(saved), set(targets))
    with torch.no_grad():
        for name, target in targets.items():
            _check_record(model_file, name, meta["model"][name], target)
            local = target.to_local() if _is_dtensor(target) else target
            local.copy_(saved[name].to(local.dtype))
    if optimizer is None:
        return
    if "optimizer" not in meta:
        raise ValueError(f"{meta_path}: holds no optimizer state")
    optimizer_file = folder / f"optimizer_rank{rank}.safetensors"
    tensors = load_file(str(optimizer_file))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    for name, local in tensors.items():
        param_id, key = name.split(".", 1)
        param = params[int(param_id)]
        record = meta["optimizer"]["tensors"][name]
        value: torch.Tensor = local
        if "placements" in record:
            if _placements(param) != record["placements"]:
                raise ValueError(f"{optimizer_file}: {name} was saved with placements {record['placements']}, "
                                 f"the parameter now has {_placements(param)}")
            from torch.distributed.tensor import DTensor

            value = DTensor.from_local(local.to(param.device), param.device_mesh, param.placements, run_check=False,
                                       shape=torch.Size(record["global_shape"]), stride=param.stride())
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta["optimizer"]["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})


def _is_dtensor(value: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def _placements(value: torch.Tensor) -> list[str] | None:
    """E.g. ["Shard(dim=0)"] for an FSDP2 shard; None for a plain tensor."""
    return [repr(p) for p in value.placements] if _is_dtensor(value) else None


def _check_names(path: Path, saved: set[str], expected: set[str]) -> None:
    if saved != expected:
        raise ValueError(f"{path}: tensor names differ from the model's (missing {sorted(expected - saved)[:5]}, "
                         f"unexpected {sorted(saved - expected)[:5]})")


def _check_record(path: Path, name: str, record: dict[str, Any], target: torch.Tensor) -> None:
    now = _describe(target)
    for key in ("global_shape", "dtype", "placements", "local_shape"):
        if record.get(key) != now.get(key):
            raise ValueError(f"{path}: {name} has {key} {record.get(key)} in the checkpoint but {now.get(key)} in the model")


def _atomic_save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata={"format": "pt"})
    os.replace(partial, path)


def _atomic_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


# -- consolidated export --------------------------------------------------------------------------
def full_model_state_dict(model: torch.nn.Module, *, keep_on_every_rank: bool = False) -> dict[str, torch.Tensor]:
    """The model's full (unsharded) state dict on CPU: gathered shard by shard (every rank must call this, in
    the same order) and kept on rank 0 only, unless `keep_on_every_rank`. Unsharded models return a copy."""
    rank, _ = _rank_and_world()
    full: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        if _is_dtensor(value):
            value = value.full_tensor()  # a collective: all ranks take part even if they drop the result
        if rank == 0 or keep_on_every_rank:
            full[name] = value.detach().to("cpu").clone().contiguous()
    return full


def save_full_model(folder: str | Path, model: torch.nn.Module, *, processor: Any = None) -> None:
    """A `save_pretrained` folder (safetensors) of the consolidated model, written by rank 0; all ranks call it."""
    rank, _ = _rank_and_world()
    state = full_model_state_dict(model)
    if rank == 0:
        model.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
        if processor is not None:
            processor.save_pretrained(str(folder))
