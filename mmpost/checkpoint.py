"""Checkpoints in safetensors plus plain JSON/YAML; written atomically; never unpickled.

`<output_dir>/checkpoints/step_<N>/` holds the model (a `save_pretrained` folder, or the LoRA adapter),
the processor, `optimizer.safetensors` + `optimizer.json`, `trainer_state.json` (step, scheduler,
sampler position, metrics so far) and `rng_rank<R>.json`/`.safetensors`. It is written under a temporary
name and renamed into place, and `latest` is replaced atomically, so a crash never leaves a partial
checkpoint that `resume=auto` would pick.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))


# -- optimizer state without pickle ---------------------------------------------------------------
def optimizer_state_to_files(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    save_file(tensors, str(folder / "optimizer.safetensors"))
    _write_json(folder / "optimizer.json", {"param_groups": state["param_groups"], "scalars": scalars})


def optimizer_state_from_files(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    meta = json.loads((folder / "optimizer.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# -- random number generators ---------------------------------------------------------------------
def rng_state_to_files(folder: Path, rank: int) -> None:
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    _write_json(folder / f"rng_rank{rank}.json", {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
    })
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    save_file(tensors, str(folder / f"rng_rank{rank}.safetensors"))


def rng_state_from_files(folder: Path, rank: int) -> None:
    data = json.loads((folder / f"rng_rank{rank}.json").read_text())
    version, state, gauss = data["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, *rest = data["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    tensors = load_file(str(folder / f"rng_rank{rank}.safetensors"))
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in tensors])


# -- whole checkpoints ----------------------------------------------------------------------------
def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(output_dir: str | Path, step: int, *, model, processor, optimizer, trainer_state: dict,
                    config_yaml: str, is_main: bool, rank: int, keep: int = 0, barrier=lambda: None) -> Path:
    """Write `checkpoints/step_<step>` atomically and point `latest` at it."""
    root = checkpoint_root(output_dir)
    final = root / f"step_{step}"
    staging = root / f".step_{step}.partial"
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier()
    from mmpost.distributed import full_model_state_dict, is_sharded, save_sharded_state

    sharded = is_sharded(model)
    if sharded:
        # FSDP2: every rank writes its own parameter and optimizer shards (exact resume at the same world size),
        # and rank 0 also writes the gathered full model (loadable anywhere with from_pretrained).
        full_state = full_model_state_dict(model)
        save_sharded_state(staging / "sharded", model, optimizer, rank)
    if is_main:
        model.save_pretrained(str(staging / "model"), safe_serialization=True, **({"state_dict": full_state} if sharded else {}))
        processor.save_pretrained(str(staging / "model"))
        if not sharded:
            optimizer_state_to_files(optimizer, staging)
        _write_json(staging / "trainer_state.json", trainer_state)
        (staging / "config.yaml").write_text(config_yaml)
    rng_state_to_files(staging, rank)
    barrier()
    if is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        pointer = root / ".latest.tmp"
        pointer.write_text(final.name)
        os.replace(pointer, root / "latest")
        _prune(root, keep)
    barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    if keep <= 0:
        return
    steps = sorted((int(p.name.split("_")[1]), p) for p in root.glob("step_*") if p.name.split("_")[1].isdigit())
    for _, path in steps[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def find_resume_checkpoint(resume: str | None, output_dir: str | Path) -> Path | None:
    if not resume:
        return None
    if resume == "auto":
        pointer = checkpoint_root(output_dir) / "latest"
        if not pointer.is_file():
            return None
        path = checkpoint_root(output_dir) / pointer.read_text().strip()
    else:
        path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"{path}: not a complete mmpost checkpoint (no trainer_state.json)")
    return path


def load_model_weights(model, folder: Path) -> None:
    """Load a checkpoint's weights into an already-built (possibly PEFT-wrapped) model."""
    model_dir = folder / "model"
    adapter = model_dir / "adapter_model.safetensors"
    if adapter.is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(adapter)))
        return
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k}
    if set(missing) - tied or unexpected:
        raise ValueError(f"{model_dir}: weights do not match the model (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    if tied and hasattr(model, "tie_weights"):
        model.tie_weights()
