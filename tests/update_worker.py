"""Builds one fixed rollout batch and applies one update; run in-process or under torchrun.

Usage: python update_worker.py MODEL_DIR OUT_FILE MICRO_BATCH_SIZE AGGREGATION [NORM_CONSTANT]
Under torchrun each rank updates on its share of the rows (rank::world); the gradient must equal the
single-process full-batch gradient, which the test checks through the weights after one SGD step.
"""
import sys

import torch
from accelerate import Accelerator
from safetensors.torch import save_file

from mmpost.config import load_config
from mmpost.experience import OnPolicy, StepContext
from mmpost.model import load_model, load_processor
from mmpost.policy import TokenPolicy
from mmpost.registry import ADVANTAGES, MODALITIES, TASKS
from mmpost.rollout.base import SamplingParams
from mmpost.rollout.hf import HFGenerateBackend
from mmpost.scoring import bind_rewards, score_batch
from mmpost.update import Learner, LossSettings, StepWeights, update_mini_batch


def fixed_batch(model_dir: str, aggregation: str, norm_constant: int | None = None):
    torch.manual_seed(0)
    config = load_config(None, [f"model.path={model_dir}", f"algorithm.aggregation={aggregation}", "algorithm.kl_coef=0.0",
                                "algorithm.logprob_pass=padded", "rollout.max_new_tokens=6", "rollout.num_generations=4",
                                f"algorithm.norm_constant={norm_constant if norm_constant else 'null'}"])
    task = TASKS.get("shapes")(train_size=8, heldout_size=4)
    modality = MODALITIES.get("image")()
    model = load_model(config.model)
    policy = TokenPolicy(model, load_processor(model_dir), task, modality)
    samples = [modality.decode(s) for s in task.load("train")[:4]]
    backend = HFGenerateBackend(model, pad_token_id=policy.pad_token_id, eos_token_ids=policy.eos_token_ids,
                                suppressed_token_ids=policy.suppressed_token_ids)
    ctx = StepContext(policy, backend, SamplingParams(n=4, max_new_tokens=6), 1, task.accuracy_reward)
    batch = OnPolicy().collect(ctx, samples, policy.encode_prompts(samples))
    # Rewards made to vary so every group has signal; the loss math is what is under test.
    batch.reward_parts, _ = score_batch(batch, bind_rewards(config.reward_specs() or []))
    batch.rewards = torch.linspace(0.0, 1.0, len(batch)) ** 2
    batch.advantages = ADVANTAGES.get("grpo")(batch.rewards, batch.group_ids)
    return config, model, policy, batch


def run(model_dir: str, micro_batch_size: int, aggregation: str, norm_constant: int | None = None) -> dict[str, torch.Tensor]:
    config, model, policy, batch = fixed_batch(model_dir, aggregation, norm_constant)
    accelerator = Accelerator(cpu=True)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    config.algorithm.micro_batch_size = micro_batch_size
    settings = LossSettings.from_config(config.algorithm, config.rollout, policy)
    rows = torch.arange(len(batch))[accelerator.process_index :: accelerator.num_processes]
    update_mini_batch(Learner(accelerator, model, None, optimizer, scheduler), batch, rows, settings, StepWeights(), step=1)
    return {k: v.detach().clone().contiguous() for k, v in accelerator.unwrap_model(model).state_dict().items()}


if __name__ == "__main__":
    model_dir, out_file, micro, aggregation = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    weights = run(model_dir, micro, aggregation, int(sys.argv[5]) if len(sys.argv) > 5 else None)
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        save_file(weights, out_file)
    if dist.is_initialized():
        # Leave together and tear the group down before exit: a rank that exits with its gloo group alive can abort
        # ("terminate called without an active exception", exit -6), seen once in CI.
        dist.barrier()
        dist.destroy_process_group()
