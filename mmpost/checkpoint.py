"""Checkpoints in safetensors plus plain JSON/YAML; written atomically; never unpickled.

`<output_dir>/checkpoints/step_<N>/` holds the model (a `save_pretrained` folder, or the LoRA adapter),
the processor, `optimizer.safetensors` + `optimizer.json`, `trainer_state.json` (step, scheduler,
sampler position, run id, metrics so far) and `rng_rank<R>.json`/`.safetensors`. It is written under a temporary
name and renamed into place, and `latest` is replaced atomically, so a crash never leaves a partial
checkpoint that `resume=auto` would pick; a failed write removes its temporary folder.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
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
class CheckpointError(OSError):
    """A checkpoint that cannot be written (not enough free space, a failed write); nothing partial is left behind."""


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def is_complete_checkpoint(folder: Path) -> bool:
    return (folder / "trainer_state.json").is_file()


def step_folders(root: Path) -> list[Path]:
    """`step_<N>` folders under `root`, by step."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if p.is_dir() and p.name.split("_", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("_", 1)[1]))


def estimate_checkpoint_bytes(model, optimizer) -> int:
    """About how many bytes a checkpoint of `model` and `optimizer` takes: the weights `save_pretrained` writes
    (a PEFT model writes only its trainable adapter), the optimizer's tensors, and 1 MiB for processor and JSON."""
    def size(tensor) -> int:
        return tensor.numel() * tensor.element_size()

    if hasattr(model, "peft_config"):
        weights = sum(size(p) for p in model.parameters() if p.requires_grad)
    else:
        seen: set[int] = set()
        weights = 0
        for tensor in list(model.parameters()) + list(model.buffers()):
            if id(tensor) not in seen:  # tied weights are stored once
                seen.add(id(tensor))
                weights += size(tensor)
    states = sum(size(value) for state in optimizer.state.values() for value in state.values() if isinstance(value, torch.Tensor))
    return weights + states + (1 << 20)


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


def check_free_space(root: Path, needed: int, step: int) -> None:
    """Refuse to start a checkpoint the disk cannot hold (every process decides alike: same model, same disk)."""
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < needed:
        raise CheckpointError(f"cannot write checkpoints/step_{step}: it needs about {_gigabytes(needed)} ({needed} bytes) "
                              f"and {_gigabytes(free)} ({free} bytes) is free on {root}; nothing was written; "
                              f"{_latest_text(root)}")


def _latest_text(root: Path) -> str:
    latest = root / "latest"
    if latest.is_file():
        return f"the last checkpoint is checkpoints/{latest.read_text().strip()} (free space, then continue with train.resume=auto)"
    return "no earlier checkpoint exists"


def save_checkpoint(output_dir: str | Path, step: int, *, model, processor, optimizer, trainer_state: dict,
                    config_yaml: str, is_main: bool, rank: int, keep: int = 0, barrier=lambda: None) -> Path:
    """Write `checkpoints/step_<step>` atomically and point `latest` at it.

    Free space is checked first; a write that fails (disk full, an interrupt) removes its `.step_<N>.partial`
    folder, so `latest` and the earlier checkpoints stay as they were. Pruning (`keep`) only removes checkpoints of
    the same run (`trainer_state["run_id"]`), oldest written first, never the one just written.
    """
    root = checkpoint_root(output_dir)
    final = root / f"step_{step}"
    staging = root / f".step_{step}.partial"
    check_free_space(root, estimate_checkpoint_bytes(model, optimizer), step)
    try:
        if is_main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        barrier()
        from mmpost.distributed import full_model_state_dict, save_sharded_state, sharding

        sharded = sharding(model) == "fsdp2"
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
            _write_json(staging / "trainer_state.json", {**trainer_state, "saved_at": time.time()})
            (staging / "config.yaml").write_text(config_yaml)
        rng_state_to_files(staging, rank)
        barrier()
    except BaseException as error:
        if is_main:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, CheckpointError):
            raise CheckpointError(f"checkpoints/step_{step} could not be written ({type(error).__name__}: {error}); the "
                                  f"partial folder was removed; {_latest_text(root)}") from error
        raise
    if is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        pointer = root / ".latest.tmp"
        pointer.write_text(final.name)
        os.replace(pointer, root / "latest")
        _prune(root, keep, trainer_state.get("run_id"), final)
    barrier()
    return final


def _prune(root: Path, keep: int, run_id: str | None, current: Path) -> None:
    """Remove this run's oldest checkpoints beyond `keep`. Checkpoints of other runs (or without a run id) are
    never touched, and neither is `current`."""
    if keep <= 0 or run_id is None:
        return
    own = []
    for folder in step_folders(root):
        if folder == current:
            continue
        try:
            state = json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue  # incomplete or foreign: not ours to delete
        if state.get("run_id") == run_id:
            own.append((float(state.get("saved_at", 0.0)), folder))
    for _, folder in sorted(own, key=lambda item: item[0], reverse=True)[keep - 1:]:
        shutil.rmtree(folder, ignore_errors=True)


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
