"""Experience sources: ViSurf's injected label and reward controls, HPT's switch, CHORD's weights.

A scripted rollout backend returns chosen completions, so every reward and advantage is known by hand.
"""
import pytest
import torch

from mmpost.config import RewardSpec
from mmpost.experience import Chord, HybridPostTraining, OnPolicy, StepContext, ViSurf, label_signal
from mmpost.model import load_model, load_processor
from mmpost.config import ModelConfig
from mmpost.policy import TokenPolicy
from mmpost.registry import ADVANTAGES, MODALITIES, TASKS
from mmpost.rollout.base import GenerationResult, SamplingParams
from mmpost.scoring import bind_rewards, score_batch, total_reward


class ScriptedBackend:
    """Returns the given completion texts for every prompt, in order."""

    def __init__(self, tokenizer, eos_id, texts):
        self.ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos_id] for t in texts]

    def generate(self, prompts, samples, params):
        return GenerationResult([list(self.ids[j]) for _ in prompts for j in range(params.n)])

    def sync_weights(self, model):
        pass


@pytest.fixture(scope="module")
def setup(tiny_vl_dir):
    task = TASKS.get("shapes")(kinds=["color"], train_size=4)
    modality = MODALITIES.get("image")()
    policy = TokenPolicy(load_model(ModelConfig(path=str(tiny_vl_dir))), load_processor(str(tiny_vl_dir)), task, modality)
    samples = [modality.decode(s) for s in task.load("train")[:2]]
    return policy, samples


def make_context(policy, samples, texts):
    backend = ScriptedBackend(policy.tokenizer, policy.eos_token_ids[0], texts)
    return StepContext(policy, backend, SamplingParams(n=len(texts)), 1, "shapes_accuracy")


REWARDS = bind_rewards([RewardSpec(name="shapes_accuracy"), RewardSpec(name="answer_tag_format", weight=0.5)])


def test_visurf_injects_the_label_into_each_group_with_neutral_format(setup):
    policy, samples = setup
    wrong = "red" if samples[0]["answer"] != "red" else "blue"
    texts = [f"<answer>{wrong}</answer>", wrong, f"<answer>{wrong}</answer>"]  # format 1, 0, 1; accuracy 0
    ctx = make_context(policy, samples, texts)
    source = ViSurf(label_advantage_cap=0.5)
    batch = source.collect(ctx, samples, policy.encode_prompts(samples))
    assert batch.sources == ["policy"] * 3 + ["policy"] * 3 + ["label", "label"]
    assert batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 0, 1]
    label_row = 6
    target = policy.encode_target(f"<answer>{samples[0]['answer']}</answer>")
    assert batch.completion_ids[label_row, : len(target)].tolist() == target
    assert batch.completion_mask[label_row].sum() == len(target)
    assert batch.completions[label_row] == f"<answer>{samples[0]['answer']}</answer>"
    batch.reward_parts, _ = score_batch(batch, REWARDS)
    scored = batch
    batch, _ = source.after_rewards(ctx, scored)
    # The label's format reward is replaced by its group's rollout mean (2/3): neither rewarded nor penalised.
    assert batch.reward_parts["answer_tag_format"][label_row].item() == pytest.approx(2 / 3)
    assert scored.reward_parts["answer_tag_format"][label_row].item() == 1.0  # a new batch; the given one is unchanged
    total = batch.reward_parts["shapes_accuracy"] + 0.5 * batch.reward_parts["answer_tag_format"]
    batch.rewards = total
    batch.advantages = ADVANTAGES.get("grpo")(batch.rewards, batch.group_ids)
    group = torch.tensor([0.5, 0.0, 0.5, 1.0 + 1 / 3])
    expected = (group[-1] - group.mean()) / (group.std() + 1e-6)
    assert batch.advantages[label_row].item() == pytest.approx(expected.item(), rel=1e-5)
    uncapped = batch.advantages[label_row].item()
    capped, _ = source.after_advantages(ctx, batch)
    assert capped.advantages[label_row].item() == pytest.approx(0.5)  # capped
    assert batch.advantages[label_row].item() == uncapped


def test_visurf_zeroes_the_label_when_a_rollout_already_solved(setup):
    policy, samples = setup
    texts = [f"<answer>{samples[0]['answer']}</answer>", "<answer>nothing</answer>"]
    ctx = make_context(policy, samples[:1], texts)
    source = ViSurf(zero_label_advantage_when_solved=True)
    batch = source.collect(ctx, samples[:1], policy.encode_prompts(samples[:1]))
    batch.reward_parts, _ = score_batch(batch, REWARDS)
    batch.rewards = total_reward(batch.reward_parts, REWARDS, len(batch))
    batch.advantages = ADVANTAGES.get("grpo")(batch.rewards, batch.group_ids)
    batch, metrics = source.after_advantages(ctx, batch)
    assert batch.advantages[2].item() == 0.0 and metrics["visurf/label_zeroed_fraction"] == 1.0


def test_visurf_label_signal_by_hand():
    """Group 0: rollouts of 3 and 5 tokens, its label 4 tokens with advantage 1.0 (1.5 before the cap); group 1:
    rollouts of 2 and 2 tokens, its label 4 tokens with advantage 0. 20 tokens in the step."""
    group_ids = torch.tensor([0, 0, 1, 1, 0, 1])
    is_label = torch.tensor([False, False, False, False, True, True])
    advantages = torch.tensor([-0.5, -0.5, 1.0, -1.0, 1.0, 0.0])
    lengths = torch.tensor([3.0, 5.0, 2.0, 2.0, 4.0, 4.0])
    accuracy = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    kinds = ["count", "count", "color", "color", "count", "color"]
    out = label_signal(group_ids, is_label, advantages, torch.tensor([1.5, 0.0]), lengths, torch.ones(6, dtype=torch.bool),
                       accuracy, kinds)
    assert out["visurf/label_sft_scale"] == pytest.approx((1.0 * 4 + 0.0 * 4) / 20)
    # |A| * len: 1.5, 2.5, 2, 2, 4, 0 -> the labels hold 4 of 12
    assert out["visurf/label_weight_share"] == pytest.approx(4 / 12)
    assert out["visurf/label_advantage_positive_fraction"] == 0.5
    assert out["visurf/label_advantage_negative_fraction"] == 0.0
    assert out["visurf/label_advantage_capped_fraction"] == 0.5
    assert out["visurf/label_advantage_uncapped_mean"] == pytest.approx(0.75)
    assert out["visurf/labels/count"] == 1 and out["visurf/labels/color"] == 1
    assert out["visurf/label_advantage_mean/count"] == 1.0 and out["visurf/label_advantage_mean/color"] == 0.0
    assert out["visurf/label_advantage_positive_fraction/color"] == 0.0
    assert out["visurf/rollout_accuracy/count"] == 0.5 and out["visurf/rollout_accuracy/color"] == 1.0
    # a dropped row leaves the step's token count and weights
    keep = torch.tensor([True, True, False, False, True, True])
    out = label_signal(group_ids, is_label, advantages, torch.tensor([1.5, 0.0]), lengths, keep)
    assert out["visurf/label_sft_scale"] == pytest.approx(4 / 16)
    assert out["visurf/label_weight_share"] == pytest.approx(4 / 8)
    assert not any("/count" in k for k in out)  # no kinds given


def test_hpt_switches_unsolved_prompts_to_sft(setup):
    policy, samples = setup
    # Sample 0 is solved by one rollout, sample 1 by none.
    assert samples[0]["answer"] != samples[1]["answer"]  # the seeded task draws two colours
    texts = [f"<answer>{samples[0]['answer']}</answer>", "<answer>nothing</answer>"]
    ctx = make_context(policy, samples, texts)
    source = HybridPostTraining(switch_gate=0)
    batch = source.collect(ctx, samples, policy.encode_prompts(samples))
    assert batch.sources == ["policy"] * 4 + ["expert"] * 2 and batch.is_sft.tolist() == [False] * 4 + [True] * 2
    batch.reward_parts, _ = score_batch(batch, REWARDS)
    batch, metrics = source.after_rewards(ctx, batch)
    assert batch.keep.tolist() == [True, True, False, False, False, True]
    assert metrics["hpt/sft_fraction"] == 0.5


def test_chord_weights_follow_the_mu_schedule():
    source = Chord(mu_args={"warmup": 2, "decay": 4, "peak": 0.8, "valley": 0.1})
    assert source.loss_weights(1) == pytest.approx((0.6, 0.4))  # warm-up: mu = 1/2 * 0.8
    assert source.loss_weights(2)[1] == pytest.approx(0.8)
    assert source.loss_weights(4)[1] == pytest.approx(0.45)  # halfway through the cosine: (0.8-0.1)/2 + 0.1
    assert source.loss_weights(10)[1] == pytest.approx(0.1)
    assert OnPolicy().loss_weights(5) == (1.0, 1.0)
