"""mmpost's math against numbers verl's, KlearReasoner's and HPT's own functions produced.

The fixture tests/fixtures/parity/verl_core_algos.json comes from benchmarks/parity_verl.py, which checks out
each repository at a recorded commit and calls its real functions on fixed float64 inputs (verl
`kl_penalty`, `agg_loss`, the GRPO / RLOO / REINFORCE++-baseline advantages, the vanilla / gspo / sapo / cispo
policy losses, `AdaptiveKLController`; KlearReasoner `compute_gppo_loss`; HPT's `compute_policy_loss` +
`compute_sft_pure_loss` as its actor combines them). None of those packages is imported here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmpost.algos import advantages as adv
from mmpost.algos import aggregation as agg
from mmpost.algos import kl
from mmpost.algos import policy_losses as pl
from mmpost.algos.kl_control import AdaptiveKL
from mmpost.registry import AGGREGATIONS

DATA = json.loads((Path(__file__).parent / "fixtures" / "parity" / "verl_core_algos.json").read_text())
INPUTS = DATA["inputs"]
TOL = 1e-6


def t(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64)


MASK, LOGP, OLD, REF = t(INPUTS["mask"]), t(INPUTS["logp"]), t(INPUTS["old"]), t(INPUTS["ref"])
LOSS_MAT, SCORES, ADV = t(INPUTS["loss_mat"]), t(INPUTS["scores"]), t(INPUTS["advantages"])
GROUP = torch.tensor(INPUTS["group"])
NONEMPTY = MASK.sum(-1) > 0


def value_and_grad(fn):
    leaf = LOGP.clone().requires_grad_(True)
    value = fn(leaf)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach(), grad


def close(ours, expected, tol=TOL):
    expected = t(expected)
    assert ours.shape == expected.shape and torch.allclose(ours.double(), expected, atol=tol, rtol=tol), (ours, expected)


def test_fixture_records_the_reference_commits():
    assert DATA["commits"]["verl"].startswith("b178a3cd5")
    assert DATA["commits"]["klear_fixed"].startswith("e0f7bb1") and DATA["commits"]["klear_before_fix"].startswith("6dc5bb9")
    assert DATA["commits"]["hpt"].startswith("17eae4e")
    # KlearReasoner's HEAD cannot run its own GPPO: the parameter is `only_high`, the body reads `only_higher`.
    assert DATA["klear_head"] == {"error": "NameError: name 'only_higher' is not defined"}


@pytest.mark.parametrize("verl_name,ours", [("kl", kl.k1), ("k1", kl.k1), ("mse", kl.k2), ("k2", kl.k2),
                                            ("low_var_kl", kl.k3), ("k3", kl.k3)])
def test_kl_estimators_equal_verl(verl_name, ours):
    """Values and gradients, including tokens whose log-ratio passes the ±20 and ±10 clamps of low_var_kl."""
    value, grad = value_and_grad(lambda lp: ours(lp, REF))
    close(value, DATA["verl"]["kl"][verl_name]["value"])
    close(grad, DATA["verl"]["kl"][verl_name]["grad"])


def test_unclamped_k3_differs_from_verl_only_past_the_clamp():
    value, _ = value_and_grad(lambda lp: kl.k3_unclamped(lp, REF))
    verl = t(DATA["verl"]["kl"]["k3"]["value"])
    differs = (value - verl).abs() > 1e-9
    assert int(differs.sum()) == 3 and bool((verl[differs].abs() == 10.0).all())


def test_aggregations_equal_verl_agg_loss():
    verl = DATA["verl"]["agg"]
    empty_rows_left_out = int(NONEMPTY.sum())  # verl's seq-mean modes count only rows with a token
    assert agg.token_mean(LOSS_MAT, MASK).item() == pytest.approx(verl["token-mean"], abs=TOL)
    assert agg.seq_mean_token_mean(LOSS_MAT, MASK, num_sequences=empty_rows_left_out).item() == pytest.approx(
        verl["seq-mean-token-mean"], abs=TOL)
    assert agg.seq_mean_token_sum(LOSS_MAT, MASK, num_sequences=empty_rows_left_out).item() == pytest.approx(
        verl["seq-mean-token-sum"], abs=TOL)
    # verl's seq-mean-token-sum-norm is the token sum over the constant (default: the padded width T) ...
    assert agg.token_sum_norm(LOSS_MAT, MASK).item() == pytest.approx(verl["seq-mean-token-sum-norm"], abs=TOL)
    assert agg.token_sum_norm(LOSS_MAT, MASK, norm_constant=8192).item() == pytest.approx(
        verl["seq-mean-token-sum-norm/loss_scale_factor=8192"], abs=TOL)
    assert AGGREGATIONS.get("seq-mean-token-sum-norm")(LOSS_MAT, MASK).item() == pytest.approx(
        verl["seq-mean-token-sum-norm"], abs=TOL)
    # ... which is N times Dr.GRPO's seq_mean_token_sum_norm (the claim the old docstring got wrong).
    assert verl["seq-mean-token-sum-norm"] == pytest.approx(8 * agg.seq_mean_token_sum_norm(LOSS_MAT, MASK).item(), abs=TOL)
    # Documented difference: mmpost counts the fully masked row among the sequences, as TRL's .mean() does.
    assert agg.seq_mean_token_mean(LOSS_MAT, MASK).item() == pytest.approx(verl["seq-mean-token-mean"] * 7 / 8, abs=TOL)


def test_data_parallel_split_equals_verl():
    """verl's per-rank values (global counts, x dp_size) are mmpost's per-rank loss x world size, mode by mode;
    for seq-mean-token-sum-norm both leave the 1/P of FSDP's gradient average in place."""
    halves = DATA["verl"]["agg"]["dp2_halves"]
    tokens, sequences = MASK.sum(), NONEMPTY.sum()
    for index, rows in enumerate((slice(0, 4), slice(4, 8))):
        loss, mask = LOSS_MAT[rows], MASK[rows]
        assert 2 * agg.token_mean(loss, mask, num_tokens=tokens).item() == pytest.approx(halves["token-mean"][index], abs=TOL)
        assert 2 * agg.seq_mean_token_mean(loss, mask, num_sequences=sequences).item() == pytest.approx(
            halves["seq-mean-token-mean"][index], abs=TOL)
        assert 2 * agg.seq_mean_token_sum(loss, mask, num_sequences=sequences).item() == pytest.approx(
            halves["seq-mean-token-sum"][index], abs=TOL)
        assert 2 * agg.token_sum_norm(loss, mask, num_processes=2).item() == pytest.approx(
            halves["seq-mean-token-sum-norm"][index], abs=TOL)


def per_row(values) -> torch.Tensor:
    return t(values)[NONEMPTY]  # an empty row's advantage is masked to 0 by verl, so it carries no value


@pytest.mark.parametrize("verl_name,ours", [
    ("grpo", lambda r, g: adv.grpo(r, g, eps=1e-6)),
    ("grpo_vectorized", lambda r, g: adv.grpo(r, g, eps=1e-6)),
    ("grpo_no_std", lambda r, g: adv.grpo(r, g, scale="none")),
    ("rloo", adv.rloo),
    ("rloo_vectorized", adv.rloo),
])
def test_advantages_equal_verl(verl_name, ours):
    close(ours(SCORES, GROUP)[NONEMPTY], per_row(DATA["verl"]["advantages"][verl_name]))


def test_reinforce_pp_baseline_whitens_per_token_as_verl():
    lengths = t(INPUTS["lengths_rfpp"])
    close(adv.reinforce_pp(SCORES, GROUP, lengths=lengths), DATA["verl"]["advantages"]["reinforce_plus_plus_baseline"])
    assert DATA["verl"]["advantages"]["reinforce_plus_plus_baseline_row_spread"] == 0.0
    # Weighing sequences equally (token_weighted=False) is a different estimator when lengths differ.
    equal = adv.reinforce_pp(SCORES, GROUP, lengths=lengths, token_weighted=False)
    assert (equal - t(DATA["verl"]["advantages"]["reinforce_plus_plus_baseline"])).abs().max() > 1e-3


POLICY_CASES = {
    "vanilla_symmetric": (pl.ppo_clip, {"clip_low": 0.2, "dual_clip_c": 3.0}, agg.token_mean),
    "vanilla_clip_higher": (pl.ppo_clip, {"clip_low": 0.2, "clip_high": 0.28, "dual_clip_c": 3.0}, agg.token_mean),
    "vanilla_clip_higher_c2": (pl.ppo_clip, {"clip_low": 0.2, "clip_high": 0.28, "dual_clip_c": 2.0}, agg.token_mean),
    "gspo": (pl.gspo, {"clip_low": 3e-4, "clip_high": 4e-4}, lambda l, m: agg.seq_mean_token_mean(l, m, num_sequences=7)),
    "sapo": (pl.sapo, {"temperature_pos": 1.0, "temperature_neg": 1.05}, lambda l, m: agg.seq_mean_token_mean(l, m, num_sequences=7)),
    "cispo": (pl.cispo, {"ratio_min": 0.8, "ratio_max": 1.28}, agg.token_mean),
}


@pytest.mark.parametrize("name", sorted(POLICY_CASES))
def test_policy_losses_equal_verl(name):
    """verl always applies its dual clip (clip_ratio_c, default 3) in `vanilla`: mmpost's dual_clip_c."""
    loss_fn, kwargs, aggregate = POLICY_CASES[name]
    value, grad = value_and_grad(lambda lp: aggregate(loss_fn(lp, OLD, ADV, MASK, **kwargs)[0], MASK))
    expected = DATA["verl"]["policy_loss"][name]
    assert value.item() == pytest.approx(expected["value"], abs=TOL)
    close(grad, expected["grad"])


@pytest.mark.parametrize("fixture_key,kwargs", [("klear_fixed", {}), ("klear_before_fix", {"dual_clip_at_one": True})])
def test_gppo_equals_klear_reasoner(fixture_key, kwargs):
    value, grad = value_and_grad(lambda lp: agg.token_mean(pl.gppo(lp, OLD, ADV, MASK, **kwargs)[0], MASK))
    assert value.item() == pytest.approx(DATA[fixture_key]["gppo"]["value"], abs=TOL)
    close(grad, DATA[fixture_key]["gppo"]["grad"])


def test_adaptive_kl_controller_equals_verl():
    reference = DATA["verl"]["adaptive_kl"]
    controller = AdaptiveKL(reference["init"], target_kl=reference["target"], horizon=reference["horizon"])
    ours = []
    for index, (value, sequences) in enumerate(INPUTS["kl_steps"]):
        key = "loss/kl" if index % 2 else "reward/kl"  # the in-loss and the in-reward KL feed it alike
        controller.update({key: value, "rollout/sequences": sequences})
        ours.append(controller.coef)
    assert ours == pytest.approx(reference["coefs"], abs=1e-12)


def hpt_micro_batch(policy_loss, aggregation, **policy_args):
    """mmpost's HPT recipe loss on the fixture's micro-batch: policy loss on RL rows + 1.0 x token-mean SFT."""
    from mmpost.algos.sft_losses import cross_entropy

    sft = torch.tensor(INPUTS["sft_rows"])

    def loss(lp):
        rl = aggregation(policy_loss(lp[~sft], OLD[~sft], ADV[~sft], MASK[~sft], **policy_args)[0], MASK[~sft])
        return rl + agg.token_mean(cross_entropy(lp[sft], MASK[sft]), MASK[sft])

    return value_and_grad(loss)


def test_hpt_official_loss_equals_unify_post_training():
    """loss_remove_token_mean + loss_remove_clip: unclipped -A*ratio summed over tokens / the padded width, plus the SFT
    rows' token mean (sft_loss_coef 1.0) - the `hpt` recipe's `reinforce` + `token_sum_norm` (C = T here, 8192 there)."""
    value, grad = hpt_micro_batch(pl.reinforce, lambda l, m: agg.token_sum_norm(l, m, norm_constant=MASK.shape[1]))
    assert value.item() == pytest.approx(DATA["hpt"]["official"]["value"], abs=TOL)
    close(grad, DATA["hpt"]["official"]["grad"])


def test_hpt_recipe_divides_the_rl_token_sum_by_its_padded_width_as_the_official_rule():
    """The official RL term is Σ_tokens / eos_mask.shape[-1], the width responses are padded to (8192 there because
    its max_response_length is 8192). The recipe must divide by ITS padded width (rollout.max_new_tokens), not by the
    literal 8192: on a mini-batch of the recipe's shape (8 prompts x 8 rollouts / 2 mini-batches = 32 rows, 5 of 12
    tokens each) a per-token loss of 1 gives an RL term of 32 x 5/12 = 13.3 token means (the official run: 64 rows
    per GPU x its fill of the 8192 width), against the SFT term's 1; the literal 8192 gave 0.02, an RL term ~680x
    too small, which made HPT "SFT on the failed groups only" (benchmarks/results/learning_hpt.md)."""
    from mmpost.config import load_config
    from mmpost.update import LossSettings

    config = load_config(Path(__file__).resolve().parents[1] / "recipes" / "hpt.yaml")
    settings = LossSettings.from_config(config.algorithm, config.rollout, policy=None)
    width = config.rollout.max_new_tokens
    assert settings.norm_constant == width
    rows = config.data.prompts_per_step * config.rollout.num_generations // config.algorithm.mini_batches
    mask = torch.zeros(rows, width, dtype=torch.float64)
    mask[:, :5] = 1.0
    rl_term = settings.aggregation(torch.ones_like(mask), mask, norm_constant=settings.norm_constant)
    assert rl_term.item() == pytest.approx(rows * 5 / width)
    assert rl_term.item() > 1.0  # not negligible against the SFT term's token mean (1 here)


def test_hpt_kept_option_equals_its_clipped_token_mean_branch():
    value, grad = hpt_micro_batch(pl.ppo_clip, agg.token_mean, clip_low=0.2)
    assert value.item() == pytest.approx(DATA["hpt"]["clipped_token_mean"]["value"], abs=TOL)
    close(grad, DATA["hpt"]["clipped_token_mean"]["grad"])


def test_hpt_advantage_is_grpo_without_std():
    close(adv.grpo(SCORES, GROUP, scale="none")[NONEMPTY], per_row(DATA["hpt"]["grpo_no_std"]))
