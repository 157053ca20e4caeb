"""Advantages of one fixed batch whose prompts are sharded over processes, as the trainer shards them.

Usage: python advantage_worker.py OUT_JSON   (alone, or under torchrun: each rank gets prompts rank::world)
Writes {row index: advantage} for this process's rows and the step metrics (rank 0 writes the file).
"""
import json
import sys

import torch
import torch.distributed as dist

from mmpost.config import load_config
from mmpost.experience import RolloutBatch
from mmpost.scoring import BoundReward, total_reward
from mmpost.trainer import compute_advantages

PROMPTS, G, T = 6, 4, 5
# Per row: two reward parts (NaN = the reward returned None); rows 5 and 17 have no reward at all.
REWARDS = [[1, 0.5], [0, 1], [1, 1], [0, 0], [1, 0], [float("nan")] * 2, [0, 0.5], [1, 1],
           [0.5, 0], [0, 0], [1, float("nan")], [0, 1], [1, 1], [1, 1], [1, 1], [1, 1],
           [0, 0], [float("nan")] * 2, [1, 0], [0.25, 0.5], [0, 0], [0, 0], [0, 0], [1, 0]]
LENGTHS = [5, 3, 4, 1, 5, 2, 4, 5, 2, 2, 3, 5, 1, 1, 4, 4, 5, 3, 2, 1, 4, 5, 3, 2]
CASES = [("grpo", {"scale": "batch"}), ("grpo", {"scale": "group"}), ("flow_grpo", {}), ("reinforce_pp", {}),
         ("rloo", {})]


def advantages(rank: int, world: int) -> dict:
    prompts = list(range(PROMPTS))[rank::world]
    rows = [p * G + j for p in prompts for j in range(G)]
    out = {}
    for name, args in CASES:
        config = load_config(None, [f"algorithm.advantage={name}", "algorithm.drop_zero_variance_groups=true"])
        config.algorithm.advantage_args = dict(args)
        mask = (torch.arange(T)[None, :] < torch.tensor([LENGTHS[r] for r in rows])[:, None]).float()
        batch = RolloutBatch(prompts=[], samples=[], prompt_index=torch.arange(len(prompts)).repeat_interleave(G),
                             group_ids=torch.arange(len(prompts)).repeat_interleave(G),  # local ids, as a source makes them
                             completion_ids=torch.zeros(len(rows), T, dtype=torch.long), completion_mask=mask,
                             sources=["policy"] * len(rows), is_sft=torch.zeros(len(rows), dtype=torch.bool),
                             keep=torch.ones(len(rows), dtype=torch.bool))
        parts = torch.tensor([REWARDS[r] for r in rows], dtype=torch.float32)
        bound = [BoundReward("a", 1.0, None, {}), BoundReward("b", 0.5, None, {})]
        batch.reward_parts = {"a": parts[:, 0], "b": parts[:, 1]}
        batch.rewards = total_reward(batch.reward_parts, bound, len(batch))
        batch.advantages, batch.keep, metrics = compute_advantages(batch, config.algorithm)
        out[f"{name}{args}"] = {"advantages": dict(zip(rows, batch.advantages.tolist())), "metrics": metrics,
                                "kept": dict(zip(rows, batch.keep.tolist()))}
    return out


if __name__ == "__main__":
    world = 1
    if "RANK" in __import__("os").environ:
        dist.init_process_group("gloo")
        world = dist.get_world_size()
    rank = dist.get_rank() if world > 1 else 0
    result = advantages(rank, world)
    gathered = [None] * world
    if world > 1:
        dist.all_gather_object(gathered, result)
    else:
        gathered = [result]
    if rank == 0:
        merged = {}
        for part in gathered:
            for key, value in part.items():
                entry = merged.setdefault(key, {"advantages": {}, "kept": {}, "metrics": value["metrics"]})
                entry["advantages"].update(value["advantages"])
                entry["kept"].update(value["kept"])
        with open(sys.argv[1], "w") as handle:
            json.dump(merged, handle)
    if world > 1:
        dist.destroy_process_group()
