"""Time the token log-prob passes alone: `completion_logprobs` per layout, without and with gradients.

    python benchmarks/logprob_passes.py                      # all layouts, 20 timed calls each, JSON on the last line
    python benchmarks/logprob_passes.py --layouts shared_prefix --image-size 448 --repeats 40

A GRPO-shaped batch on the tiny Qwen2.5-VL (`--prompts` prompts x `--group` completions of `--width` tokens, random
lengths, fixed seed), one thread. Each layout runs `--warmup` untimed calls, then `--repeats` timed ones; the median
is reported for a no-grad pass (old-policy / reference) and for a pass plus backward (the update). The whole-step
benchmark is `throughput.py`; this one isolates the code `mmpost/logprobs.py` owns, so two checkouts can be compared
by running it from each in turn (alternating, on the same machine) without rollout noise. Not a test.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def batch_for(model_dir: Path, *, prompts: int, group: int, width: int, image_size: int, seed: int):
    import torch

    import mmpost.modalities  # noqa: F401  (registers the image modality)
    import mmpost.tasks  # noqa: F401  (registers the shapes task)
    from mmpost.config import ModelConfig
    from mmpost.experience import RolloutBatch
    from mmpost.model import load_model, load_processor
    from mmpost.policy import TokenPolicy
    from mmpost.registry import MODALITIES, TASKS

    torch.manual_seed(seed)
    model = load_model(ModelConfig(path=str(model_dir)))
    processor = load_processor(str(model_dir))
    modality = MODALITIES.get("image")()
    task = TASKS.get("shapes")(image_size=image_size, train_size=prompts)
    policy = TokenPolicy(model, processor, task, modality)
    samples = [modality.decode(s) for s in task.load("train")]
    encodings = policy.encode_prompts(samples)
    n = prompts * group
    allowed = torch.tensor([i for i in range(200) if i not in set(policy.suppressed_token_ids)])
    ids = allowed[torch.randint(len(allowed), (n, width))]
    lengths = torch.randint(1, width + 1, (n,))
    mask = (torch.arange(width)[None] < lengths[:, None]).float()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, policy.pad_token_id))
    prompt_index = torch.arange(prompts).repeat_interleave(group)
    batch = RolloutBatch(prompts=encodings, samples=samples, prompt_index=prompt_index, group_ids=prompt_index.clone(),
                         completion_ids=ids, completion_mask=mask, sources=["policy"] * n,
                         is_sft=torch.zeros(n, dtype=torch.bool))
    return model, policy, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="+", default=["padded", "packed", "shared_prefix"])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model-dir", help="a tiny-qwen2.5-vl folder (built in a temporary folder when omitted)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    try:
        from mmpost.logprobs import completion_logprobs
    except ImportError:  # checkouts before mmpost/logprobs.py existed
        from mmpost.policy import completion_logprobs
    from mmpost.registry import MODEL_ZOO

    with tempfile.TemporaryDirectory(prefix="mmpost-logprob-bench-") as scratch:
        model_dir = Path(args.model_dir) if args.model_dir else Path(scratch) / "tiny"
        if not (model_dir / "config.json").is_file():
            import mmpost.modalities  # noqa: F401

            options = {"max_pixels": args.image_size ** 2} if args.image_size > 112 else {}
            MODEL_ZOO.get("tiny-qwen2.5-vl")(model_dir, **options)
        model, policy, batch = batch_for(model_dir, prompts=args.prompts, group=args.group, width=args.width,
                                         image_size=args.image_size, seed=0)
        rows = torch.arange(len(batch))
        kwargs = dict(pad_id=policy.pad_token_id, suppressed_token_ids=policy.suppressed_token_ids, temperature=1.0)
        results = {}
        for layout in args.layouts:
            timings = {"no_grad_s": [], "with_backward_s": []}
            for index in range(args.warmup + args.repeats):
                start = time.perf_counter()
                with torch.no_grad():
                    completion_logprobs(model, batch, rows, layout=layout, **kwargs)
                middle = time.perf_counter()
                model.zero_grad(set_to_none=True)
                logprobs, _ = completion_logprobs(model, batch, rows, layout=layout, **kwargs)
                logprobs.sum().backward()
                end = time.perf_counter()
                if index >= args.warmup:
                    timings["no_grad_s"].append(middle - start)
                    timings["with_backward_s"].append(end - middle)
            results[layout] = {key: statistics.median(values) for key, values in timings.items()}
            print(f"{layout}: no grad {results[layout]['no_grad_s'] * 1e3:.1f} ms, "
                  f"with backward {results[layout]['with_backward_s'] * 1e3:.1f} ms", flush=True)
    print("RESULT " + json.dumps({"settings": vars(args), "median": results}))


if __name__ == "__main__":
    main()
