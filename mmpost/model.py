"""The model: loading the policy, its processor and its reference through the same path a hub checkpoint takes,
and what a transformers model is fed (collated prompts, position ids) and wrapped in (DDP/FSDP, PEFT)."""
from __future__ import annotations

import copy
import inspect
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from mmpost.config import ModelConfig
from mmpost.registry import MODEL_ZOO
from mmpost.types import PromptEncoding

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
VISION_TOWER_NAMES = ("visual", "vision_tower", "vision_model", "audio_tower")


def ensure_model_folder(config: ModelConfig) -> str:
    """Return the model path, first building it from the zoo when `model.zoo` names a builder."""
    if config.zoo and not (Path(config.path) / "config.json").is_file():
        log.info("building zoo model %s at %s", config.zoo, config.path)
        MODEL_ZOO.get(config.zoo)(config.path)
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


# -- what the model is fed ------------------------------------------------------------------------
ROPE_INDEX_ARGUMENTS = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "second_per_grid_ts")


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


def collate_prompts(prompts: Sequence[PromptEncoding], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prompt ids and concatenate media rows along dim 0."""
    width = max(p.input_ids.numel() for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        n = p.input_ids.numel()
        input_ids[i, width - n :] = p.input_ids
        attention_mask[i, width - n :] = 1
    batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
    for key in sorted({k for p in prompts for k in p.token_fields}):
        values = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            if key in p.token_fields:
                values[i, width - p.input_ids.numel() :] = p.token_fields[key]
        batch[key] = values
    # A text-only prompt contributes no media rows; the model matches media rows to placeholder tokens in order.
    for key in sorted({k for p in prompts for k in p.media}):
        batch[key] = torch.cat([p.media[key] for p in prompts if key in p.media], dim=0)
    return batch


def rope_index_module(model: nn.Module) -> nn.Module | None:
    """The submodule that computes multimodal (M-RoPE) position ids, e.g. `Qwen2_5_VLModel`; None for 1-D RoPE."""
    for module in unwrap(model).modules():
        if callable(getattr(module, "get_rope_index", None)):
            return module
    return None


def text_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """1-D positions that skip padding: [B, L] mask -> [B, L] long (0 at masked slots)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0) * attention_mask.long()


def position_ids_for(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Padding-independent position ids of a padded batch: [3, B, L] for M-RoPE models, else [B, L].

    For Qwen2-VL/2.5-VL the model's `get_rope_index` (Wang et al. 2024, M-RoPE: text tokens advance all three
    axes by 1; an image advances them by max(h, w) / merge) with the attention mask, so padding takes no position.
    """
    mask = inputs["attention_mask"]
    text = text_position_ids(mask)
    module = rope_index_module(model)
    if module is None:
        return text
    has_media = any(inputs.get(k) is not None for k in ("image_grid_thw", "video_grid_thw"))
    if not has_media or inputs.get("mm_token_type_ids") is None:
        return text.unsqueeze(0).expand(3, -1, -1)
    rope_arguments = {k: inputs[k] for k in ROPE_INDEX_ARGUMENTS if inputs.get(k) is not None}
    positions, _ = module.get_rope_index(inputs["input_ids"], attention_mask=mask, **rope_arguments)
    return positions
