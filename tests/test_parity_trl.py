"""mmpost's training path against numbers TRL's own GRPO code produced (tests/fixtures/parity/trl_grpo.json.gz).

The fixture (gzip-compressed JSON) comes from benchmarks/parity_trl.py, which runs TRL 1.16's `GRPOTrainer._compute_loss` and its
advantage code on four fixed batches (ordinary, off-policy, far reference with k3 > 10, completions with
every reward None) for every TRL loss type mmpost has an equivalent of x epsilon/epsilon_high x delta x beta
x scale_rewards x importance_sampling_level. Here the same rewards and log-probs go through mmpost's own
path: `total_reward` -> `compute_advantages` -> `LossSettings.from_config` -> `micro_batch_loss`,
with a stand-in policy that returns the fixed log-probs. TRL is not imported.

TRL option -> mmpost config:
  loss_type grpo / bnpo / dr_grpo / dapo / luspo / sapo / cispo -> aggregation seq_mean_token_mean / token_mean /
      seq_mean_token_sum_norm (norm_constant = max_completion_length) / token_mean / seq_mean_token_sum /
      seq_mean_token_mean / token_mean
  epsilon, epsilon_high, delta -> ppo_clip (gspo with importance_sampling_level="sequence") clip_low,
      clip_high, dual_clip_c; cispo's epsilon_high -> cispo ratio_max; sapo -> sapo (TRL's default temperatures)
  beta -> kl_coef with kl_estimator k3_unclamped (TRL's k3 has no clamp); use_bias_correction_kl (TRL's
      default True: the KL times the importance ratio) -> kl_importance_weighted
  scale_rewards -> advantage grpo {scale, eps: 1e-4} (TRL's eps)
"""
from __future__ import annotations

import copy
import functools
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmpost.config import load_config
from mmpost.experience import RolloutBatch
from mmpost.scoring import BoundReward, total_reward
from mmpost.trainer import compute_advantages
from mmpost.update import LossSettings, StepWeights, micro_batch_loss, normalisers

FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "trl_grpo.json.gz"
DATA = json.loads(gzip.decompress(FIXTURE.read_bytes()))
TOLERANCE = 1e-6
AGGREGATION = {"grpo": "seq_mean_token_mean", "bnpo": "token_mean", "dr_grpo": "seq_mean_token_sum_norm",
               "dapo": "token_mean", "luspo": "seq_mean_token_sum", "sapo": "seq_mean_token_mean", "cispo": "token_mean"}
SAPO_TRL_DEFAULTS = {"temperature_pos": 1.0, "temperature_neg": 1.05}  # GRPOConfig sapo_temperature_pos/neg


def tensor(values) -> torch.Tensor | None:
    return None if values is None else torch.tensor(values, dtype=torch.float64)


class FixedLogprobs:
    """A stand-in policy kind: the update's `logprobs` call returns rows of one fixed leaf tensor."""

    pad_token_id, suppressed_token_ids = 0, []
    computes_own_kl = False

    def __init__(self, logp: torch.Tensor) -> None:
        self.leaf = logp.clone().requires_grad_(True)

    def logprobs(self, model, batch, rows, *, temperature, layout, token_budget=None, full_distribution=False):
        return self.leaf[rows], None


def step_weights(config) -> StepWeights:
    """RL and SFT weight 1; TRL's beta as the step's KL weight (a fixed controller)."""
    return StepWeights(rl=1.0, sft=1.0, kl=config.algorithm.kl_coef)


def mmpost_config(trl: dict):
    return _config(json.dumps(trl, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _config(key: str):
    trl = json.loads(key)
    loss_type = trl["loss_type"]
    overrides = {"algorithm.aggregation": AGGREGATION[loss_type], "algorithm.kl_coef": trl["beta"],
                 "algorithm.kl_estimator": "k3_unclamped", "algorithm.norm_constant": DATA["shape"]["max_completion_length"],
                 "algorithm.advantage": "grpo"}
    eps, eps_high = trl["epsilon"], trl["epsilon_high"] if trl["epsilon_high"] is not None else trl["epsilon"]
    if loss_type == "sapo":
        policy, args = "sapo", dict(SAPO_TRL_DEFAULTS)
    elif loss_type == "cispo":
        policy, args = "cispo", {"ratio_min": None, "ratio_max": eps_high}
    else:
        policy = "gspo" if trl["importance_sampling_level"] == "sequence" else "ppo_clip"
        args = {"clip_low": eps, "clip_high": eps_high, "dual_clip_c": trl["delta"]}
    overrides["algorithm.kl_importance_weighted"] = str(trl.get("use_bias_correction_kl", True)).lower()
    config = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    config.algorithm.policy_loss, config.algorithm.policy_loss_args = policy, args
    config.algorithm.advantage_args = {"scale": trl["scale_rewards"], "eps": DATA["shape"]["advantage_eps"]}
    return config


def run_batch(name: str, config) -> tuple[RolloutBatch, SimpleNamespace]:
    """The batch as the trainer holds it after scoring: reward parts with NaN where a reward returned None."""
    raw = DATA["batches"][name]
    mask = tensor(raw["mask"])
    rows, group = mask.shape[0], DATA["shape"]["group_size"]
    batch = RolloutBatch(prompts=[], samples=[], prompt_index=torch.arange(rows) // group,
                         group_ids=torch.arange(rows) // group, completion_ids=torch.zeros(mask.shape, dtype=torch.long),
                         completion_mask=mask, sources=["policy"] * rows, is_sft=torch.zeros(rows, dtype=torch.bool),
                         keep=torch.ones(rows, dtype=torch.bool))
    rewards = tensor(raw["rewards"])
    weights = DATA["shape"]["reward_weights"]
    bound = [BoundReward(f"reward_{k}", w, lambda c, s: [], {}) for k, w in enumerate(weights)]
    batch.reward_parts = {r.name: rewards[:, k] for k, r in enumerate(bound)}
    batch.old_logprobs, batch.ref_logprobs = tensor(raw["old"]), tensor(raw["ref"])
    run = SimpleNamespace(config=config, rewards=bound, world=1, rank=0)
    return batch, run


def mmpost_loss(case: dict, config=None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """mmpost's loss, d loss/d log-prob and advantages on the case's batch (`config`: the case's, mapped, by default)."""
    config = config or mmpost_config(case["config"])
    batch, run = run_batch(case["batch"], config)
    batch.rewards = total_reward(batch.reward_parts, run.rewards, len(batch))
    batch.advantages, batch.keep, _ = compute_advantages(batch, config.algorithm)
    policy = FixedLogprobs(tensor(DATA["batches"][case["batch"]]["logp"]))
    settings = LossSettings.from_config(config.algorithm, config.rollout, policy)
    rows = torch.arange(len(batch))
    loss, _ = micro_batch_loss(None, None, batch, rows, settings, normalisers(batch, rows), step_weights(config))
    (grad,) = torch.autograd.grad(loss, policy.leaf)
    return float(loss.detach()), grad, batch.advantages


@pytest.mark.parametrize("name", sorted(DATA["batches"]))
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_equal_trl(name, scale):
    config = mmpost_config({"loss_type": "grpo", "epsilon": 0.2, "epsilon_high": None, "delta": None, "beta": 0.0,
                            "scale_rewards": scale, "importance_sampling_level": "token"})
    batch, run = run_batch(name, config)
    batch.rewards = total_reward(batch.reward_parts, run.rewards, len(batch))
    batch.advantages, batch.keep, metrics = compute_advantages(batch, config.algorithm)
    expected = tensor(DATA["advantages"][name][scale])
    assert torch.allclose(batch.advantages.double(), expected, atol=TOLERANCE, rtol=0), (batch.advantages, expected)
    assert metrics["reward/unscorable"] == (2.0 if name == "all_none" else 0.0)


def test_fixture_covers_the_issue_grid():
    cases = DATA["cases"]
    assert {c["config"]["loss_type"] for c in cases} == set(AGGREGATION)
    assert {c["batch"] for c in cases} == {"ordinary", "off_policy", "far_reference", "all_none"}
    clip = [c["config"] for c in cases if c["config"]["loss_type"] == "grpo"]
    kl = {(0.0, True), (0.04, True), (0.04, False)}  # (beta, use_bias_correction_kl)
    assert {(c["epsilon"], c["epsilon_high"], c["delta"], c["beta"], c["use_bias_correction_kl"], c["scale_rewards"],
             c["importance_sampling_level"]) for c in clip} == {
        (0.2, h, d, b, bias, s, lv) for h in (None, 0.28) for d in (None, 2.0) for b, bias in kl
        for s in ("group", "batch", "none") for lv in ("token", "sequence")}
    # The far-reference batch really has k3 > 10 where TRL's unclamped k3 and verl's clamp part ways.
    far = DATA["batches"]["far_reference"]
    log_ratio = tensor(far["ref"]) - tensor(far["logp"])
    k3 = (torch.exp(log_ratio) - log_ratio - 1) * tensor(far["mask"])
    assert int((k3 > 10).sum()) == 3


@pytest.mark.parametrize("loss_type", sorted(AGGREGATION))
def test_loss_and_gradient_equal_trl(loss_type):
    """Every config of this loss type, on all four batches: loss and d loss / d log-prob within 1e-6."""
    cases = [c for c in DATA["cases"] if c["config"]["loss_type"] == loss_type]
    assert cases
    worst_loss = worst_grad = 0.0
    for case in cases:
        loss, grad, _ = mmpost_loss(case)
        expected_grad = tensor(case["grad"])
        loss_gap = abs(loss - case["loss"]) / max(1.0, abs(case["loss"]))
        grad_gap = float(((grad - expected_grad).abs() / expected_grad.abs().clamp(min=1.0)).max())
        assert loss_gap < TOLERANCE and grad_gap < TOLERANCE, (case["batch"], case["config"], loss, case["loss"])
        worst_loss, worst_grad = max(worst_loss, loss_gap), max(worst_grad, grad_gap)
    print(f"{loss_type}: {len(cases)} cases, max |dloss| {worst_loss:.1e}, max |dgrad| {worst_grad:.1e}")


def test_clamped_k3_is_not_trl():
    """The far-reference batch tells the two k3s apart: with verl's clamped k3 mmpost no longer matches TRL."""
    case = next(c for c in DATA["cases"] if c["batch"] == "far_reference" and c["config"]["beta"] == 0.04
                and c["config"]["loss_type"] == "grpo" and c["config"]["importance_sampling_level"] == "token"
                and not c["config"]["use_bias_correction_kl"])
    config = copy.deepcopy(mmpost_config(case["config"]))
    config.algorithm.kl_estimator = "k3"
    loss, _, _ = mmpost_loss(case, config)
    assert case["loss"] - loss > 0.01  # the clamp lowers the loss where k3 > 10
