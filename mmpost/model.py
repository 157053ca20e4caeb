"""The model: loading the policy, its processor and its reference through the same path a hub checkpoint takes,
and finding the transformers model inside its wrappers (DDP/FSDP, PEFT). What the model is fed is elsewhere:
prompts are collated by `mmpost.types.collate_prompts`, positions and log-prob passes are `mmpost.logprobs`."""
from __future__ import annotations

import copy
import inspect
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmpost.config import ModelConfig
from mmpost.registry import MODEL_ZOO

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
VISION_TOWER_NAMES = ("visual", "vision_tower", "vision_model", "audio_tower")


ZOO_STAMP = "mmpost_zoo.json"  # written next to a zoo-built model: which builder, which version


def build_record(folder: Path) -> dict[str, Any]:
    """What a zoo build produced and where: a SHA-256 per weights file and the software and CPU it was built with.
    Rebuilds from the same code and seeds are byte-identical on one machine but have differed across machines
    (README, "Rebuilt warm starts"), so two builds are compared by digest, and a difference can be traced."""
    import hashlib
    import platform

    import transformers

    cpu, flags = platform.processor(), []
    cpuinfo = Path("/proc/cpuinfo")  # Linux: the model name and the vector units BLAS kernels are chosen by
    for line in cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            cpu = value.strip()
        elif key.strip() == "flags":
            flags = [f for f in value.split() if f.startswith(("avx2", "avx512f", "avx_vnni", "amx"))]
            break  # the first processor's entry is enough
    digests = {str(file.relative_to(folder)): hashlib.sha256(file.read_bytes()).hexdigest()
               for file in sorted(folder.rglob("*.safetensors"))}  # diffusers pipelines keep theirs in subfolders
    return {"weights_sha256": digests, "built_with": {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "cpu": cpu, "cpu_flags": flags}}


def ensure_model_folder(config: ModelConfig) -> str:
    """Return the model path, first building it from the zoo when `model.zoo` names a builder.

    A zoo model is built once and reused. A builder that declares a `zoo_version` (warm starts whose recipe changed
    between releases) has a folder built by another version rebuilt, so a cached model never silently goes stale."""
    if config.zoo and config.path:
        folder = Path(config.path)
        builder = MODEL_ZOO.get(config.zoo)
        version = getattr(builder, "zoo_version", None)
        stamp = folder / ZOO_STAMP
        recorded = json.loads(stamp.read_text()) if stamp.is_file() else {}
        built = (folder / "config.json").is_file()
        stale = built and version is not None and recorded.get("version") != version
        if not built or stale:
            what = f"rebuilding {config.zoo} (cached version {recorded.get('version')!r}, now {version!r})" if stale \
                else f"building {config.zoo}"
            print(f"[mmpost] {what} at {folder}: done once, later runs reuse it", file=sys.stderr, flush=True)
            started = time.perf_counter()
            builder(folder)
            seconds = time.perf_counter() - started
            stamp.write_text(json.dumps({"zoo": config.zoo, "version": version, "build_seconds": round(seconds, 1),
                                         **build_record(folder)}, indent=1))
            print(f"[mmpost] {config.zoo} ready in {seconds:.0f} s, cached at {folder}", file=sys.stderr, flush=True)
    if not config.path:
        raise ValueError("model.path is empty: set it to a model folder or hub id (or set model.zoo)")
    return config.path


def load_processor(path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_model(config: ModelConfig, path: str | None = None) -> torch.nn.Module:
    """An Auto-class model for image/video/audio-text-to-text, falling back to a causal LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    path = path or config.path
    kwargs: dict[str, Any] = {"dtype": DTYPES[config.dtype], "trust_remote_code": config.trust_remote_code}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    model_config = AutoConfig.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    errors = []
    for auto in (AutoModelForImageTextToText, AutoModelForCausalLM):
        try:
            auto._model_mapping[type(model_config)]  # noqa: B018 - is this architecture served by this Auto class?
        except KeyError as error:
            errors.append(f"{auto.__name__}: {error}")
            continue
        return auto.from_pretrained(path, **kwargs)
    # Audio LMs (e.g. Qwen2-Audio) are served by their own class named in the config.
    architectures = getattr(model_config, "architectures", None) or []
    import transformers

    for name in architectures:
        if hasattr(transformers, name):
            return getattr(transformers, name).from_pretrained(path, **kwargs)
    raise ValueError(f"{path}: no transformers class can load architecture {architectures} ({'; '.join(errors)})")


def prepare_policy(model: torch.nn.Module, config: ModelConfig) -> torch.nn.Module:
    """Freeze the vision tower, wrap in LoRA, enable gradient checkpointing, as configured."""
    if config.freeze_vision:
        frozen = 0
        for name, module in model.named_modules():
            if name.split(".")[-1] in VISION_TOWER_NAMES:
                for parameter in module.parameters():
                    parameter.requires_grad_(False)
                    frozen += parameter.numel()
        if not frozen:
            raise ValueError(f"model.freeze_vision is set but no vision tower ({VISION_TOWER_NAMES}) was found")
    if config.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
            # The vision tower stays out of LoRA unless the user names its modules.
            exclude_modules=r".*(visual|vision_tower|audio_tower).*" if config.lora.target_modules == "all-linear" else None,
        )
        model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def build_reference(policy: torch.nn.Module, config: ModelConfig, needed: bool) -> torch.nn.Module | None:
    """The frozen reference: a copy of the initial weights, or none when the LoRA adapter can be disabled."""
    if not needed or config.reference == "none":
        return None
    mode = config.reference
    if mode == "auto":
        mode = "adapter_disabled" if config.lora.enabled else "copy"
    if mode == "adapter_disabled":
        if not config.lora.enabled:
            raise ValueError("model.reference=adapter_disabled needs model.lora.enabled=true")
        return None  # computed with `policy.disable_adapter()`
    reference = copy.deepcopy(policy)
    reference.requires_grad_(False)
    reference.eval()
    return reference


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# -- the model inside its wrappers ----------------------------------------------------------------
def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model inside DDP/FSDP (`.module`) and PEFT (`get_base_model`) wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def accepts_argument(model: nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(unwrap(model).forward).parameters
    except (TypeError, ValueError):
        return False
