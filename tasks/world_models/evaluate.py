"""Held-out measurement of an AR world model: greedy next frames on a split's conditioning, scored by the reward
IDM (RLIR's action-following accuracy), the gold IDM and the pixel error. What recipes/rlir_ar.md reports.

    python -m mmpost.tasks.world_models.evaluate MODEL_DIR [--split heldout] [--size 64] [--frames 3]
"""
from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from mmpost.modalities.frames.adapter import FramesModality
from mmpost.tasks.world_models.rewards import idm_exact, idm_gold_exact, idm_soft, pixel_mae
from mmpost.tasks.world_models.task import RlirArTask


@torch.no_grad()
def evaluate_world_model(model_dir: str, *, split: str = "heldout", size: int = 64, frames: int = 3,
                         batch_size: int = 32) -> dict[str, Any]:
    """Means over `size` samples of `split`: idm_exact, idm_soft, idm_gold_exact, pixel_mae (greedy decoding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mmpost.types import collate_prompts

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    task, modality = RlirArTask(frames=frames), FramesModality()
    samples = [modality.decode(s) for s in task.load(split, size=size)]
    allowed = set(task.allowed_token_ids(tokenizer)) | {tokenizer.eos_token_id}
    suppressed = sorted(set(range(len(tokenizer))) - allowed)
    completions, ids = [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        inputs = collate_prompts([modality.encode_prompt(tokenizer, [], s) for s in chunk], tokenizer.pad_token_id)
        out = model.generate(**inputs, do_sample=False, max_new_tokens=frames * 65 + 1, suppress_tokens=suppressed,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        for row in out[:, inputs["input_ids"].shape[1] :].tolist():
            row = row[: row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row
            ids.append(row)
            completions.append(tokenizer.decode(row, skip_special_tokens=True))
    scores = {name: fn(completions, samples, completion_ids=ids) for name, fn in
              [("idm_exact", idm_exact), ("idm_soft", idm_soft), ("idm_gold_exact", idm_gold_exact), ("pixel_mae", pixel_mae)]}
    return {"split": split, "size": len(samples), **{k: sum(v) / len(v) for k, v in scores.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(evaluate_world_model(args.model_dir, split=args.split, size=args.size, frames=args.frames)))


if __name__ == "__main__":
    main()
