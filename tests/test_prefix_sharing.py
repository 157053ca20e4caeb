"""Shared-prefix log-prob passes: each prompt once, same log-probs and same gradients as the padded pass."""
import copy

import pytest
import torch

from mmpost.config import ModelConfig
from mmpost.experience import RolloutBatch
from mmpost.logprobs import LogprobPlan, checkpointing_drops_cache, completion_logprobs, continuation_positions
from mmpost.model import load_model, load_processor
from mmpost.policy import TokenPolicy
from mmpost.registry import MODALITIES, TASKS

# Image sizes give prompts of different lengths: 112 px -> 16 image tokens, 56 px -> 4, 84 px -> 9.
IMAGE_SIZES = (112, 56, 84)


def image_batch(model_dir, group_sizes=(3, 1, 2), completion_width=7, seed=0):
    """A rollout batch on the tiny Qwen2.5-VL: one prompt per group (different image sizes), random completions
    of different lengths (row 0 fills the width, others stop early and are padded)."""
    torch.manual_seed(seed)
    modality = MODALITIES.get("image")()
    model = load_model(ModelConfig(path=str(model_dir)))
    processor = load_processor(str(model_dir))
    samples, prompts, policy = [], [], None
    for k in range(len(group_sizes)):
        task = TASKS.get("shapes")(image_size=IMAGE_SIZES[k % len(IMAGE_SIZES)], train_size=4)
        policy = TokenPolicy(model, processor, task, modality)
        sample = modality.decode(task.load("train")[k % 4])
        samples.append(sample)
        prompts.extend(policy.encode_prompts([sample]))
    allowed = torch.tensor([i for i in range(200) if i not in set(policy.suppressed_token_ids)])
    n = sum(group_sizes)
    prompt_index = torch.repeat_interleave(torch.arange(len(group_sizes)), torch.tensor(group_sizes))
    ids = allowed[torch.randint(len(allowed), (n, completion_width))]
    lengths = torch.randint(1, completion_width + 1, (n,))
    lengths[0] = completion_width
    mask = (torch.arange(completion_width)[None] < lengths[:, None]).float()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, policy.pad_token_id))
    batch = RolloutBatch(prompts=prompts, samples=samples, prompt_index=prompt_index, group_ids=prompt_index.clone(),
                         completion_ids=ids, completion_mask=mask, sources=["policy"] * n,
                         is_sft=torch.zeros(n, dtype=torch.bool))
    return model, policy, batch


def gradients_of(model, batch, rows, policy, weights, layout):
    model.zero_grad(set_to_none=True)
    logprobs, _ = completion_logprobs(model, batch, rows, pad_id=policy.pad_token_id,
                                      suppressed_token_ids=policy.suppressed_token_ids, layout=layout)
    (logprobs * weights).sum().backward()
    return logprobs.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(expected: dict, actual: dict, relative: float = 1e-4) -> None:
    """The same parameters got gradients, each within `relative` of the largest entry of the expected one."""
    assert expected.keys() == actual.keys()
    for name, grad in expected.items():
        scale = grad.abs().max().clamp(min=1e-6)
        assert (actual[name] - grad).abs().max() / scale < relative, name


def test_continuation_positions_follow_the_last_prompt_position():
    # Left-padded prompts; M-RoPE rows differ inside the image but agree on the final text token.
    positions = torch.tensor([[[0, 0, 1, 2, 9]], [[0, 0, 1, 3, 9]], [[0, 0, 2, 2, 9]]])  # [3, 1, 5]
    assert continuation_positions(positions, 3).tolist() == [[[10, 11, 12]]] * 3
    assert continuation_positions(torch.tensor([[0, 0, 4], [1, 2, 3]]), 2).tolist() == [[5, 6], [4, 5]]


@pytest.mark.parametrize("group_sizes,width", [((3, 1, 2), 7), ((2, 4), 5), ((1,), 1)])
def test_shared_prefix_logprobs_equal_the_padded_pass(tiny_vl_dir, group_sizes, width):
    model, policy, batch = image_batch(tiny_vl_dir, group_sizes, width)
    rows = torch.arange(len(batch))
    kwargs = dict(pad_id=policy.pad_token_id, suppressed_token_ids=policy.suppressed_token_ids, temperature=0.7)
    with torch.no_grad():
        padded, _ = completion_logprobs(model, batch, rows, **kwargs)
        shared, _ = completion_logprobs(model, batch, rows, layout="shared_prefix", **kwargs)
    assert batch.completion_mask.sum() >= len(batch)
    assert torch.allclose(shared, padded, atol=1e-5)
    assert (shared[batch.completion_mask == 0] == 0).all()


def test_shared_prefix_on_a_subset_of_rows_out_of_order(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (3, 1, 2), 6, seed=1)
    rows = torch.tensor([5, 0, 3, 2])  # groups 2, 0, 1, 0: a group split across micro-batches
    kwargs = dict(pad_id=policy.pad_token_id, suppressed_token_ids=policy.suppressed_token_ids, full_distribution=True)
    with torch.no_grad():
        padded, padded_dist = completion_logprobs(model, batch, rows, **kwargs)
        shared, shared_dist = completion_logprobs(model, batch, rows, layout="shared_prefix", **kwargs)
    assert torch.allclose(shared, padded, atol=1e-5)
    # Compared where the completion is real: past EOS the padded pass gives pad tokens position 0, this one does not.
    valid = batch.completion_mask[rows].bool()
    padded_dist, shared_dist = padded_dist[valid], shared_dist[valid]
    finite = torch.isfinite(padded_dist)
    assert torch.equal(finite, torch.isfinite(shared_dist))
    assert torch.allclose(shared_dist[finite], padded_dist[finite], atol=1e-5)


def test_shared_prefix_gradients_equal_the_padded_pass_including_the_vision_tower(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (3, 1, 2), 6, seed=2)
    rows = torch.arange(len(batch))
    weights = torch.randn(batch.completion_ids.shape)
    padded, padded_grads = gradients_of(model, batch, rows, policy, weights, "padded")
    shared, shared_grads = gradients_of(model, batch, rows, policy, weights, "shared_prefix")
    assert torch.allclose(shared, padded, atol=1e-5)
    assert_same_gradients(padded_grads, shared_grads)
    assert any(name.startswith("model.visual.") for name in padded_grads)
    vision = [g for n, g in padded_grads.items() if n.startswith("model.visual.")]
    assert sum(float(g.abs().sum()) for g in vision) > 0


def test_shared_prefix_gradients_equal_the_padded_pass_with_lora(tiny_vl_dir):
    peft = pytest.importorskip("peft")
    base, policy, batch = image_batch(tiny_vl_dir, (2, 3), 5, seed=3)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    model = peft.get_peft_model(copy.deepcopy(base), config)
    for name, parameter in model.named_parameters():  # start LoRA B away from zero so A gets a gradient too
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.1)
    rows = torch.arange(len(batch))
    weights = torch.randn(batch.completion_ids.shape)
    padded, padded_grads = gradients_of(model, batch, rows, policy, weights, "padded")
    shared, shared_grads = gradients_of(model, batch, rows, policy, weights, "shared_prefix")
    assert torch.allclose(shared, padded, atol=1e-5)
    assert padded_grads and all("lora_" in n for n in padded_grads)
    for name, grad in padded_grads.items():
        assert torch.allclose(shared_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_generation_with_shared_prefill_samples_what_generate_samples(tiny_vl_dir):
    from mmpost.rollout.hf import generate_with_shared_prefill
    from mmpost.types import collate_prompts

    model, policy, batch = image_batch(tiny_vl_dir, (1, 1, 1), 2)
    model.eval()
    inputs = collate_prompts(batch.prompts, policy.pad_token_id)  # three prompt lengths, left-padded
    settings = dict(do_sample=True, temperature=0.9, max_new_tokens=10, suppress_tokens=policy.suppressed_token_ids,
                    pad_token_id=policy.pad_token_id, output_scores=True, return_dict_in_generate=True)
    torch.manual_seed(0)
    plain = model.generate(**inputs, num_return_sequences=4, **settings)
    torch.manual_seed(0)
    shared = generate_with_shared_prefill(model, inputs, num_return_sequences=4, **settings)
    assert torch.equal(shared.sequences, plain.sequences)
    plain_scores, shared_scores = torch.stack(plain.scores, 1), torch.stack(shared.scores, 1)
    finite = torch.isfinite(plain_scores)
    assert torch.equal(finite, torch.isfinite(shared_scores))
    assert torch.allclose(shared_scores[finite], plain_scores[finite], atol=1e-5)


def test_gradient_checkpointing_runs_the_update_pass_padded_by_plan(tiny_vl_dir):
    """The run plan decides once that the update's pass is padded under gradient checkpointing (and says so); asking
    the shared-prefix pass for gradients there is an error, never a silent switch."""
    model, policy, batch = image_batch(tiny_vl_dir, (2, 1), 4, seed=7)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    assert checkpointing_drops_cache(model)
    with torch.no_grad():
        assert not checkpointing_drops_cache(model)  # old/reference passes still share prefixes
    plan = LogprobPlan.decide("shared_prefix", micro_batch_size=4, gradient_checkpointing=True)
    assert plan.layout_for(with_grad=False) == "shared_prefix" and plan.layout_for(with_grad=True) == "padded"
    assert "gradient checkpointing" in plan.decision
    rows = torch.arange(len(batch))
    weights = torch.randn(batch.completion_ids.shape)
    with pytest.raises(ValueError, match="gradient checkpointing"):
        gradients_of(model, batch, rows, policy, weights, "shared_prefix")
    padded, _ = gradients_of(model, batch, rows, policy, weights, plan.layout_for(with_grad=True))
    with torch.no_grad():
        shared, _ = completion_logprobs(model, batch, rows, pad_id=policy.pad_token_id, layout=plan.layout_for(with_grad=False),
                                        suppressed_token_ids=policy.suppressed_token_ids)
    assert torch.allclose(shared, padded.detach(), atol=1e-6)
