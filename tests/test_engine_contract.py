"""Engine pieces that serve all policy kinds: episode-level advantages, aux/outputs/masks from a backend,
rewards on token ids, the policy-kind registry and the task's own evaluation hook."""
from types import SimpleNamespace

import pytest
import torch

from mmpost.config import RewardSpec, config_from_dict
from mmpost.experience import BatchBuilder, StepContext
from mmpost.registry import POLICIES, REWARDS
from mmpost.rollout.base import GenerationResult, SamplingParams
from mmpost.scoring import bind_rewards, score_batch, total_reward
from mmpost.trainer import compute_advantages, episode_rows
from mmpost.types import PromptEncoding, Vocabulary


class StubPolicy:
    """The attributes BatchBuilder needs; decoding writes token ids as text."""

    eos_token_ids = [9]
    pad_token_id = 0
    vocabulary = Vocabulary(tokenizer=None, pad_token_id=0, eos_token_ids=(9,))

    def decode(self, completion_ids, mask):
        return [" ".join(str(t) for t in ids[m.bool()].tolist()) for ids, m in zip(completion_ids, mask)]


def prompt(n=3):
    return PromptEncoding(input_ids=torch.arange(n), media={})


def algorithm_with(advantage="grpo", drop=False):
    config = config_from_dict({"algorithm": {"advantage": advantage, "advantage_args": {"eps": 0.0},
                                             "drop_zero_variance_groups": drop}})
    return config.algorithm


def episode_batch(rewards_per_row, episode_ids, group_ids):
    builder = BatchBuilder([{"id": "s"}], [prompt()])
    for episode, group in zip(episode_ids, group_ids):
        builder.add_row(0, group, [1, 9], source="policy", is_sft=False, episode_id=episode)
    batch = builder.build(SimpleNamespace(policy=StubPolicy()))
    batch.rewards = torch.tensor(rewards_per_row)
    return batch


def test_episode_rows_maps_rows_to_first_row_of_their_episode():
    first, inverse = episode_rows(torch.tensor([5, 5, 7, 5, 7]), 5)
    assert first.tolist() == [0, 2] and inverse.tolist() == [0, 0, 1, 0, 1]
    first, inverse = episode_rows(None, 3)
    assert first.tolist() == [0, 1, 2] and inverse.tolist() == [0, 1, 2]


def test_advantages_are_per_episode_not_per_row():
    # Group 0: episode 0 (3 rows, return 1) and episode 1 (1 row, return 0). Per episode the group is {1, 0}:
    # mean 0.5, sample std 0.7071 -> +0.7071 / -0.7071. Per row it would be {1, 1, 1, 0}: different numbers.
    batch = episode_batch([1.0, 1.0, 1.0, 0.0], [0, 0, 0, 1], [0, 0, 0, 0])
    advantages, keep, _ = compute_advantages(batch, algorithm_with())  # a phase of tensors and settings: no Run
    assert batch.advantages is None and keep is batch.keep  # it returns its results and writes nothing into the batch
    assert torch.allclose(advantages, torch.tensor([0.7071, 0.7071, 0.7071, -0.7071]), atol=1e-4)


def test_zero_variance_episodes_are_dropped_with_all_their_rows():
    batch = episode_batch([1.0, 1.0, 1.0, 0.0, 0.0], [0, 0, 1, 2, 3], [0, 0, 0, 1, 1])
    kept_before = batch.keep.clone()
    _, keep, metrics = compute_advantages(batch, algorithm_with(drop=True))
    # group 0 episodes {1, 1}: flat; group 1 episodes {0, 0}: flat -> every episode dropped
    assert keep.tolist() == [False] * 5 and torch.equal(batch.keep, kept_before)
    assert metrics["rollout/zero_variance_fraction"] == 1.0


def test_rows_of_one_episode_must_share_the_reward():
    batch = episode_batch([1.0, 0.5], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="rows of one episode carry different rewards"):
        batch.advantages, batch.keep, _ = compute_advantages(batch, algorithm_with())


def test_builder_carries_aux_outputs_and_masks_from_the_backend():
    latents = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)  # 2 rows, K+1 = 4 steps, 2 dims
    result = GenerationResult(completion_ids=[[0, 0, 0], [0, 0, 0]], logprobs=[[-1.0, -2.0, -3.0]] * 2,
                              aux={"latents": latents}, outputs=["image-a", "image-b"], masks=[[1, 0, 1], [0, 1, 1]])
    builder = BatchBuilder([{"id": "c"}], [prompt()])
    builder.add_generation(result, [0], 2)
    batch = builder.build(SimpleNamespace(policy=StubPolicy()))
    assert batch.completions == ["image-a", "image-b"]
    assert batch.completion_mask.tolist() == [[1, 0, 1], [0, 1, 1]]
    assert torch.equal(batch.aux["latents"], latents)
    assert torch.equal(batch.select([1]).aux["latents"][0], latents[1])
    assert batch.sampling_logprobs[0].tolist() == [-1.0, -2.0, -3.0]


def test_add_prompt_lets_a_source_append_observations():
    builder = BatchBuilder([{"id": "a"}], [prompt()])
    index = builder.add_prompt({"id": "obs-1"}, prompt(5))
    builder.add_row(index, 0, [4, 9], source="policy", is_sft=False, episode_id=3)
    batch = builder.build(SimpleNamespace(policy=StubPolicy()))
    assert index == 1 and batch.prompt_index.tolist() == [1] and batch.samples[1]["id"] == "obs-1"
    assert batch.episode_ids.tolist() == [3]


@REWARDS.register("test_engine_contract:first_token")
def first_token(completions, samples, completion_ids):
    return [float(ids[0]) for ids in completion_ids]


def test_rewards_that_declare_completion_ids_receive_masked_token_ids():
    builder = BatchBuilder([{"id": "t"}], [prompt()])
    builder.add_row(0, 0, [7, 9], source="policy", is_sft=False)
    builder.add_row(0, 0, [3, 4, 9], source="policy", is_sft=False)
    batch = builder.build(SimpleNamespace(policy=StubPolicy()))
    rewards = bind_rewards([RewardSpec(name="test_engine_contract:first_token")])
    batch.reward_parts, _ = score_batch(batch, rewards)
    assert total_reward(batch.reward_parts, rewards, len(batch)).tolist() == [7.0, 3.0]


def test_token_policy_kind_is_registered_with_its_loaders():
    kind = POLICIES.get("token")
    assert callable(kind.load_model) and callable(kind.load_processor) and hasattr(kind, "logprobs")
    with pytest.raises(Exception, match="policy"):
        POLICIES.get("no-such-kind")


def test_tis_weights_scale_token_losses_and_leave_label_rows_alone():
    from mmpost.update import _tis_weighted

    token_loss = torch.ones(2, 2)
    old = torch.log(torch.tensor([[0.5, 0.2], [0.3, 0.3]]))
    # row 0 from the engine: ratios 0.5/0.25 = 2 (capped at 1.5) and 0.2/0.4 = 0.5; row 1 a label row (no engine log-probs)
    sampling = torch.tensor([[torch.log(torch.tensor(0.25)), torch.log(torch.tensor(0.4))], [float("nan"), float("nan")]])
    weighted, mean = _tis_weighted(token_loss, old, sampling, torch.ones(2, 2), cap=1.5)
    assert torch.allclose(weighted, torch.tensor([[1.5, 0.5], [1.0, 1.0]]))
    assert mean == pytest.approx(1.0)


def test_heldout_scoring_runs_without_a_run():
    """`score_heldout` is a phase of a policy, a backend and rows: greedy, batched, None left out, filler rows not
    counted."""
    from mmpost.rollout.base import GenerationResult
    from mmpost.trainer import score_heldout

    class EchoBackend:
        def __init__(self):
            self.calls = []

        def generate(self, prompts, samples, params):
            self.calls.append((len(prompts), params.greedy, params.max_new_tokens))
            return GenerationResult(completion_ids=[[1]] * len(prompts), outputs=[s["answer"] for s in samples])

    policy = SimpleNamespace(encode_prompts=lambda samples: [prompt() for _ in samples])
    rows = [{"answer": a} for a in ("yes", "no", "skip", "yes", "yes")]

    def accuracy(outputs, samples, *, target):
        return [None if o == "skip" else float(o == target) for o in outputs]

    backend = EchoBackend()
    total, count = score_heldout(policy, backend, rows, decode=lambda r: list(r), accuracy_fn=accuracy,
                                 accuracy_args={"target": "yes"}, max_new_tokens=4, batch_size=2, scored=4)
    assert (total, count) == (2.0, 3)  # rows 0-3 count; "skip" is None; row 4 only keeps the ranks in step
    assert backend.calls == [(2, True, 4), (2, True, 4), (1, True, 4)]


def test_row_kinds_are_one_enum_that_still_reads_as_its_name():
    from mmpost.experience import RowKind

    builder = BatchBuilder([{"id": "k"}], [prompt()])
    for kind in (RowKind.POLICY, RowKind.LABEL, RowKind.EXPERT, RowKind.POLICY):
        builder.add_row(0, 0, [5, 9], source=kind, is_sft=kind is RowKind.EXPERT)
    batch = builder.build(SimpleNamespace(policy=StubPolicy()))
    assert batch.rows_of(RowKind.POLICY).tolist() == [True, False, False, True]
    assert batch.rows_of(RowKind.EXPERT).tolist() == [False, False, True, False]
    assert batch.select(torch.tensor([1])).rows_of(RowKind.LABEL).tolist() == [True]
    assert RowKind.POLICY == "policy" and str(RowKind.LABEL) == "label"  # plugins that compare strings keep working
