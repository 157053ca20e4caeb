"""Token-policy plumbing: EOS masks, and re-scored log-probs equal the ones tokens were sampled with."""
import torch

from mmpost.config import ModelConfig
from mmpost.experience import OnPolicy, StepContext, completion_mask
from mmpost.logprobs import completion_logprobs
from mmpost.model import load_model, load_processor
from mmpost.policy import TokenPolicy
from mmpost.registry import MODALITIES, TASKS
from mmpost.rollout.base import SamplingParams
from mmpost.rollout.hf import HFGenerateBackend


def test_completion_mask_keeps_tokens_through_the_first_eos():
    ids = torch.tensor([[5, 6, 2, 7, 2], [2, 5, 5, 5, 5], [5, 5, 5, 5, 5]])
    assert completion_mask(ids, [2]).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_rescored_logprobs_equal_sampling_logprobs(tiny_vl_dir):
    torch.manual_seed(0)
    task = TASKS.get("shapes")(train_size=4)
    modality = MODALITIES.get("image")()
    model = load_model(ModelConfig(path=str(tiny_vl_dir)))
    policy = TokenPolicy(model, load_processor(str(tiny_vl_dir)), task, modality)
    backend = HFGenerateBackend(model, pad_token_id=policy.pad_token_id, eos_token_ids=policy.eos_token_ids,
                                suppressed_token_ids=policy.suppressed_token_ids)
    samples = [modality.decode(s) for s in task.load("train")]
    ctx = StepContext(policy, backend, SamplingParams(n=3, temperature=0.7, max_new_tokens=10), 1, task.accuracy_reward)
    batch = OnPolicy().collect(ctx, samples, policy.encode_prompts(samples))
    # A random model samples anything; media placeholders must never be among it.
    assert not torch.isin(batch.completion_ids[batch.completion_mask.bool()], torch.tensor(policy.suppressed_token_ids)).any()
    with torch.no_grad():
        logprobs, _ = completion_logprobs(model, batch, torch.arange(len(batch)), pad_id=policy.pad_token_id, temperature=0.7,
                                          suppressed_token_ids=policy.suppressed_token_ids)
    mask = batch.completion_mask.bool()
    assert mask.sum() > 20
    assert torch.allclose(logprobs[mask], batch.sampling_logprobs[mask], atol=1e-5)


def test_a_backend_takes_its_tokens_from_the_policy_kinds_vocabulary():
    import pytest

    from mmpost.denoising import DenoisingPolicy
    from mmpost.types import Vocabulary

    class Kind:  # what the builder hands every backend: (model, policy=..., **rollout.backend_args)
        vocabulary = Vocabulary(tokenizer=None, pad_token_id=3, eos_token_ids=(2, 9), suppressed_token_ids=(7, 8))

    backend = HFGenerateBackend(torch.nn.Linear(1, 1), policy=Kind(), batch_size=4)
    assert (backend.pad_token_id, backend.eos_token_ids, backend.suppressed_token_ids, backend.batch_size) == (3, [2, 9], [7, 8], 4)
    direct = HFGenerateBackend(torch.nn.Linear(1, 1), policy=Kind(), eos_token_ids=[5])  # a value given directly wins
    assert (direct.pad_token_id, direct.eos_token_ids) == (3, [5])
    with pytest.raises(TypeError, match="policy kind DenoisingPolicy, which emits no tokens"):
        HFGenerateBackend(torch.nn.Linear(1, 1), policy=DenoisingPolicy.__new__(DenoisingPolicy))
    with pytest.raises(TypeError, match="unexpected keyword argument 'batchsize'"):  # no `**_` swallowing a typo
        HFGenerateBackend(torch.nn.Linear(1, 1), policy=Kind(), batchsize=4)
