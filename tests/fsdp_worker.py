"""A few AdamW steps of the real `update_mini_batch` on one fixed rollout batch, under any strategy.

Usage: python fsdp_worker.py MODEL_DIR OUT_DIR STRATEGY STEPS [--micro N] [--offload] [--save-after K] [--resume FOLDER]
Under torchrun each rank updates on rows rank::world. Rank 0 writes to OUT_DIR:
  losses.json       {"<step>": loss summed over ranks (the full-batch loss, normalisers are global)}
  grad_norms.json   {"<step>": global gradient norm before clipping} (Adam hides a gradient's scale; this does not)
  final.safetensors the consolidated weights after the last step
  info.json         distributed type, parameter elements held by each rank, world size
With --generate every rank then decodes its own prompts greedily with a different max_new_tokens (rank 0: 3,
rank 1: 7): sharded weights are gathered inside each forward, so this only finishes when `generate` keeps the
ranks in step (`synced_gpus`); completion lengths, the synced flag and whether the tokens equal an unsharded
copy's go to generated.json. With --export rank 0 writes the consolidated model to OUT_DIR/export
(`save_pretrained`, safetensors).
With --save-after K the sharded state after step K goes to OUT_DIR/sharded (every rank) and the consolidated
weights / optimizer state at that point to saved_model.safetensors / saved_optimizer.safetensors.
With --resume FOLDER the sharded state is loaded before any step, written back out as loaded_model /
loaded_optimizer.safetensors, and the steps continue from the step after the saved one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
import update_worker  # noqa: E402

from accelerate.utils import DistributedType  # noqa: E402

from mmpost.distributed import (full_model_state_dict, gradient_sync, load_sharded_state, make_accelerator,  # noqa: E402
                                save_full_model, save_sharded_state)
from mmpost.update import Learner, LossSettings, StepWeights, update_mini_batch  # noqa: E402

AGGREGATION = "seq_mean_token_mean"
MICRO_BATCH = 4  # rows per forward/backward: 2 micro-batches per rank with 2 processes x 8 rows


def rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def full_optimizer_state(optimizer) -> dict[str, torch.Tensor]:
    """Every optimizer tensor, gathered to full size (all ranks call; rank 0 keeps)."""
    out = {}
    for param_id, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            if hasattr(value, "full_tensor"):
                value = value.full_tensor()
            out[f"{param_id}.{key}"] = value.detach().cpu().clone().reshape(value.shape).contiguous()
    return out


def initial_old_logprobs(settings, model, batch) -> torch.Tensor:
    """Log-probs of the starting weights, so later steps see ratios != 1 and the loss moves with the weights."""
    rows = torch.arange(len(batch))
    with torch.no_grad():
        logprobs, _ = settings.policy.logprobs(model, batch, rows, **settings.passes.pass_options(with_grad=False))
    return logprobs * batch.completion_mask


def run(model_dir: str, out_dir: str, strategy: str, steps: int, *, micro_batch_size: int = MICRO_BATCH, offload: bool = False,
        save_after: int = 0, resume: str | None = None, generate: bool = False, export: bool = False) -> dict[int, float]:
    out = Path(out_dir)
    config, model, policy, batch = update_worker.fixed_batch(model_dir, AGGREGATION)
    config.distributed.strategy = strategy
    config.distributed.cpu_offload = offload
    config.algorithm.micro_batch_size = micro_batch_size
    settings = LossSettings.from_config(config.algorithm, config.rollout, policy)
    batch.old_logprobs = initial_old_logprobs(settings, model, batch)

    accelerator = make_accelerator(config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.01)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # update_mini_batch wraps all but the last micro-batch in `accelerator.no_sync`, which under ZeRO-2/3 does
        # nothing, and accelerate then steps the engine after every backward. `gradient_sync` marks DeepSpeed's
        # accumulation boundary instead (the change proposed for update.py; harmless once update.py uses it).
        accelerator.no_sync = lambda m: gradient_sync(accelerator, m, sync=False)
    rank, world = rank_world()
    local_elements = torch.tensor([sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())])
    held = [int(x) for x in (_gather(local_elements, world) if world > 1 else local_elements)]
    first = 1
    if resume:
        load_sharded_state(resume, model, optimizer)
        first = json.loads((Path(resume) / "step.json").read_text())["step"] + 1
        _dump(out / "loaded_model.safetensors", full_model_state_dict(accelerator.unwrap_model(model)), rank)
        _dump(out / "loaded_optimizer.safetensors", full_optimizer_state(optimizer), rank)
    rows = torch.arange(len(batch))[rank::world]
    losses: dict[int, float] = {}
    grad_norms: dict[int, float] = {}
    for step in range(first, steps + 1):
        parts = update_mini_batch(Learner(accelerator, model, None, optimizer, scheduler, max_grad_norm=1.0), batch, rows,
                                  settings, StepWeights(), step=step)
        loss = torch.tensor([parts["loss/total"]], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(loss)
        losses[step] = float(loss)
        grad_norms[step] = parts["perf/grad_norm"]
        if step == save_after:
            save_sharded_state(out / "sharded", model, optimizer)
            if rank == 0:
                (out / "sharded" / "step.json").write_text(json.dumps({"step": step}))
            _dump(out / "saved_model.safetensors", full_model_state_dict(accelerator.unwrap_model(model)), rank)
            _dump(out / "saved_optimizer.safetensors", full_optimizer_state(optimizer), rank)
    _dump(out / "final.safetensors", full_model_state_dict(accelerator.unwrap_model(model)), rank)
    if export:
        save_full_model(out / "export", accelerator.unwrap_model(model), processor=policy.processor)
    if generate:
        full = full_model_state_dict(accelerator.unwrap_model(model), keep_on_every_rank=True)
        lengths = generate_unevenly(accelerator.unwrap_model(model), full, config, policy, batch, rank, world)
        if rank == 0:
            (out / "generated.json").write_text(json.dumps(lengths))
    if rank == 0:
        (out / "losses.json").write_text(json.dumps(losses))
        (out / "grad_norms.json").write_text(json.dumps(grad_norms))
        offload = getattr(getattr(accelerator.state, "fsdp_plugin", None), "cpu_offload", None)
        (out / "info.json").write_text(json.dumps({"distributed_type": str(accelerator.distributed_type),
                                                   "cpu_offload": type(offload).__name__,
                                                   "elements_per_rank": held, "world_size": world}))
    accelerator.wait_for_everyone()
    return losses


def generate_unevenly(model, full_state, config, policy, batch, rank: int, world: int) -> list[list[int]]:
    """Per rank: completion lengths, whether generation ran synced, and whether the tokens equal those of an
    unsharded copy of the same weights decoding alone."""
    from mmpost.distributed import needs_synced_generation
    from mmpost.model import load_model
    from mmpost.rollout.base import SamplingParams
    from mmpost.rollout.hf import HFGenerateBackend

    samples = list(batch.samples)[rank::world]
    prompts = policy.encode_prompts(samples)
    params = SamplingParams(n=1, greedy=True, max_new_tokens=3 + 4 * rank)

    def decode(m):
        backend = HFGenerateBackend(m, pad_token_id=policy.pad_token_id, eos_token_ids=policy.eos_token_ids,
                                    suppressed_token_ids=policy.suppressed_token_ids)
        return backend.generate(prompts, samples, params).completion_ids

    sharded_ids = decode(model)
    plain = load_model(config.model)
    plain.load_state_dict(full_state)
    same = sharded_ids == decode(plain)
    mine = torch.tensor([len(ids) for ids in sharded_ids] + [int(needs_synced_generation(model)), int(same)])
    return [[int(x) for x in row] for row in (_gather(mine, world).view(world, -1) if world > 1 else mine.view(1, -1))]


def _gather(value: torch.Tensor, world: int) -> torch.Tensor:
    parts = [torch.zeros_like(value) for _ in range(world)]
    dist.all_gather(parts, value)
    return torch.cat(parts)


def _dump(path: Path, tensors: dict[str, torch.Tensor], rank: int) -> None:
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path))


if __name__ == "__main__":
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("out_dir")
    parser.add_argument("strategy")
    parser.add_argument("steps", type=int)
    parser.add_argument("--micro", type=int, default=MICRO_BATCH)
    parser.add_argument("--offload", action="store_true")
    parser.add_argument("--save-after", type=int, default=0)
    parser.add_argument("--resume")
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--export", action="store_true")
    args = parser.parse_args()
    run(args.model_dir, args.out_dir, args.strategy, args.steps, micro_batch_size=args.micro, offload=args.offload, save_after=args.save_after,
        resume=args.resume, generate=args.generate, export=args.export)
