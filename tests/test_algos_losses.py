"""Policy losses and KL estimators against values and gradients worked out by hand.

Ratios are set exactly by choosing old = logp - log(ρ), in float64. Gradients are d(Σ token_loss)/d logp
per token, so each equals the derivative of that token's loss with respect to its own log-prob.
"""
import math

import pytest
import torch

from mmpost.algos import kl, policy_losses as pl
from mmpost.algos.aggregation import seq_mean_token_mean
from mmpost.registry import KL_ESTIMATORS, POLICY_LOSSES

F64 = torch.float64


def with_ratios(ratios, logp=None):
    """logp (requires grad) and old log-probs giving exactly the requested ratios."""
    ratios = torch.tensor(ratios, dtype=F64)
    if logp is None:
        logp = torch.linspace(-2.0, -0.1, ratios.numel(), dtype=F64).view_as(ratios)
    logp = logp.clone().requires_grad_(True)
    old = (logp - torch.log(ratios)).detach()
    return logp, old


def grad_of(loss, logp):
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    return grad


def close(actual, expected, tol=1e-9):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert torch.allclose(actual, expected, atol=tol, rtol=0), f"{actual} != {expected}"


# --- ppo_clip -----------------------------------------------------------------------------------
# Row 0: A = +1, ratios (1.1 inside, 1.5 above, 0.5 below). Row 1: A = -2, ratios (0.9, 0.5, 1.5).
# clip 0.2 -> [0.8, 1.2].
#  row 0: max(-1.1,-1.1) = -1.1 | max(-1.5,-1.2) = -1.2 clipped | max(-0.5,-0.8) = -0.5
#  row 1: max(1.8, 1.8) = 1.8   | max(1.0, 1.6) = 1.6 clipped   | max(3.0, 2.4) = 3.0
# d loss / d logp = -A·ρ where the unclipped term is active, 0 where clipped.
PPO_RATIOS = [[1.1, 1.5, 0.5], [0.9, 0.5, 1.5]]
PPO_ADV = torch.tensor([1.0, -2.0], dtype=F64)


def test_ppo_clip_values_gradients_and_metrics():
    logp, old = with_ratios(PPO_RATIOS)
    mask = torch.ones(2, 3, dtype=F64)
    loss, metrics = pl.ppo_clip(logp, old, PPO_ADV, mask)
    close(loss, [[-1.1, -1.2, -0.5], [1.8, 1.6, 3.0]])
    close(grad_of(loss, logp), [[-1.1, 0.0, -0.5], [1.8, 0.0, 3.0]])
    assert metrics["clip_fraction"] == pytest.approx(2 / 6)
    assert metrics["ratio_mean"] == pytest.approx(1.0)  # (1.1+1.5+0.5+0.9+0.5+1.5)/6
    assert metrics["approx_kl"] == pytest.approx(-sum(math.log(r) for row in PPO_RATIOS for r in row) / 6)
    assert "dual_clip_fraction" not in metrics


def test_ppo_clip_metrics_respect_mask_and_token_advantages():
    logp, old = with_ratios(PPO_RATIOS)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=F64)
    per_token = PPO_ADV[:, None].expand(2, 3)
    loss, metrics = pl.ppo_clip(logp, old, per_token, mask)
    close(loss, [[-1.1, -1.2, -0.5], [1.8, 1.6, 3.0]])
    assert metrics["clip_fraction"] == pytest.approx(2 / 5)
    assert metrics["ratio_mean"] == pytest.approx((6.0 - 1.5) / 5)


def test_ppo_clip_higher():
    # clip_low 0.2, clip_high 0.28. A=+1: ρ=1.25 inside -> -1.25; ρ=1.3 -> -1.28 clipped.
    # A=-1: ρ=0.75 -> max(0.75, 0.8) = 0.8 clipped; ρ=0.85 inside -> 0.85.
    logp, old = with_ratios([[1.25, 1.3], [0.75, 0.85]])
    loss, _ = pl.ppo_clip(logp, old, torch.tensor([1.0, -1.0], dtype=F64), torch.ones(2, 2, dtype=F64),
                          clip_low=0.2, clip_high=0.28)
    close(loss, [[-1.25, -1.28], [0.8, 0.85]])
    close(grad_of(loss, logp), [[-1.25, 0.0], [0.0, 0.85]])


def test_ppo_dual_clip():
    # c = 3. A=-2: ρ=4 -> max(8, 2.4) = 8 capped at -A·c = 6, gradient 0; ρ=2 -> 4 < 6 stays, gradient 4.
    # A=+1 rows are untouched: ρ=4 -> max(-4, -1.2) = -1.2.
    logp, old = with_ratios([[4.0, 2.0], [4.0, 1.0]])
    adv = torch.tensor([-2.0, 1.0], dtype=F64)
    loss, metrics = pl.ppo_clip(logp, old, adv, torch.ones(2, 2, dtype=F64), dual_clip_c=3.0)
    close(loss, [[6.0, 4.0], [-1.2, -1.0]])
    close(grad_of(loss, logp), [[0.0, 4.0], [0.0, -1.0]])
    assert metrics["dual_clip_fraction"] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="dual_clip_c must be > 1"):
        pl.ppo_clip(logp, old, adv, torch.ones(2, 2, dtype=F64), dual_clip_c=1.0)


def test_ppo_clip_bad_shapes():
    logp, old = with_ratios(PPO_RATIOS)
    with pytest.raises(ValueError, match="mmpost.algos.policy_losses: mask"):
        pl.ppo_clip(logp, old, PPO_ADV, torch.ones(2, 2))
    with pytest.raises(ValueError, match="advantages must be"):
        pl.ppo_clip(logp, old, torch.ones(3), torch.ones(2, 3))


# --- gspo ---------------------------------------------------------------------------------------
def test_gspo_sequence_ratio_clipping_by_hand():
    # Row 0: mask (1,1,0), token log-ratios (0.1, 0.3, 5.0 masked) -> s = exp(0.2) = 1.2214 > 1.2;
    #   A = +1 -> every token -1.2, clipped, zero gradient. The masked 5.0 must not enter s.
    # Row 1: log-ratios (-0.1, 0, 0.1) -> s = 1; A = -0.5 -> 0.5 per token, gradient -A·s = 0.5.
    logp, old = with_ratios(torch.tensor([[0.1, 0.3, 5.0], [-0.1, 0.0, 0.1]], dtype=F64).exp().tolist())
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=F64)
    adv = torch.tensor([1.0, -0.5], dtype=F64)
    loss, metrics = pl.gspo(logp, old, adv, mask, clip_low=0.1, clip_high=0.2)
    close(loss * mask, [[-1.2, -1.2, 0.0], [0.5, 0.5, 0.5]])
    close(grad_of(loss * mask, logp), [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    assert metrics["clip_fraction"] == pytest.approx(2 / 5)
    assert metrics["ratio_mean"] == pytest.approx((2 * math.exp(0.2) + 3) / 5)


def test_gspo_token_form_has_sequence_gradient():
    # Unclipped (wide range), the seq-mean-token-mean of the token form has the gradient of
    # mean_i(-A_i · s_i) with s_i = exp(mean_t log-ratio) computed WITH gradient.
    torch.manual_seed(0)
    logp = (-torch.rand(3, 4, dtype=F64)).requires_grad_(True)
    old = (logp + 0.05 * torch.randn(3, 4, dtype=F64)).detach()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=F64)
    adv = torch.tensor([0.7, -1.3, 0.4], dtype=F64)
    loss, _ = pl.gspo(logp, old, adv, mask, clip_low=5.0, clip_high=5.0)
    (ours,) = torch.autograd.grad(seq_mean_token_mean(loss, mask), logp)
    s = torch.exp(((logp - old) * mask).sum(-1) / mask.sum(-1))
    (reference,) = torch.autograd.grad((-adv * s).mean(), logp)
    close(ours, reference, 1e-12)


# --- gppo ---------------------------------------------------------------------------------------
# clip_low 0.2, clip_high 0.28. Row 0: A = +1, ρ = (1.5, 1.1, 0.5, 1.0). Row 1: A = -1, ρ = (0.5, 1.2, 1.5, 4.0).
#  row 0: 1.5 > 1.28 -> max(-1.5, -1.28) = -1.28 clipped, gradient -A·(1+0.28) = -1.28 (PPO: 0)
#         1.1 -> -1.1 | 0.5 -> max(-0.5, -0.8) = -0.5 | 1.0 -> -1.0 ; gradients -A·ρ
#  row 1: 0.5 < 0.8 -> max(0.5, 0.8) = 0.8 clipped, gradient -A·(1-0.2) = 0.8 (PPO: 0)
#         1.2 -> 1.2 | 1.5 -> max(1.5, 1.28) = 1.5 | 4.0 -> 4.0   (before the dual clip)
#  pre-fix dual clip (commit 6dc5bb9, cap -A = 1): 0.8 | min(1.2,1)=1 | 1 | 1, gradients 0.8, 0, 0, 0
#  fixed dual clip (e0f7bb1, the default, cap -A·3 = 3):  0.8 | 1.2 | 1.5 | 3, gradients 0.8, 1.2, 1.5, 0
GPPO_RATIOS = [[1.5, 1.1, 0.5, 1.0], [0.5, 1.2, 1.5, 4.0]]
GPPO_ADV = torch.tensor([1.0, -1.0], dtype=F64)


def test_gppo_dual_clip_at_one_by_hand():
    logp, old = with_ratios(GPPO_RATIOS)
    loss, metrics = pl.gppo(logp, old, GPPO_ADV, torch.ones(2, 4, dtype=F64), dual_clip_at_one=True)
    close(loss, [[-1.28, -1.1, -0.5, -1.0], [0.8, 1.0, 1.0, 1.0]])
    close(grad_of(loss, logp), [[-1.28, -1.1, -0.5, -1.0], [0.8, 0.0, 0.0, 0.0]])
    assert metrics["clip_fraction"] == pytest.approx(2 / 8)
    assert metrics["dual_clip_fraction"] == pytest.approx(3 / 8)


def test_gppo_default_is_the_fixed_dual_clip_by_hand():
    logp, old = with_ratios(GPPO_RATIOS)
    loss, metrics = pl.gppo(logp, old, GPPO_ADV, torch.ones(2, 4, dtype=F64))
    close(loss, [[-1.28, -1.1, -0.5, -1.0], [0.8, 1.2, 1.5, 3.0]])
    close(grad_of(loss, logp), [[-1.28, -1.1, -0.5, -1.0], [0.8, 1.2, 1.5, 0.0]])
    assert metrics["dual_clip_fraction"] == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="dual_clip_c must be > 1"):
        pl.gppo(logp, old, GPPO_ADV, torch.ones(2, 4, dtype=F64), dual_clip_c=0.5)


def test_gppo_forward_equals_ppo_clip_where_no_dual_clip_applies():
    # Same values as PPO with clip-higher for A > 0; only the gradients of clipped tokens differ.
    logp, old = with_ratios([GPPO_RATIOS[0]])
    adv = torch.tensor([1.0], dtype=F64)
    mask = torch.ones(1, 4, dtype=F64)
    gppo_loss, _ = pl.gppo(logp, old, adv, mask)
    ppo_loss, _ = pl.ppo_clip(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    close(gppo_loss, ppo_loss)
    close(grad_of(ppo_loss, logp), [[0.0, -1.1, -0.5, -1.0]])


def test_gppo_dual_clip_at_one_tie_at_ratio_one_halves_negative_gradient():
    # Pre-fix quirk: at ρ = 1 exactly with A < 0, min(-A·ρ, -A) is a tie and torch.minimum splits
    # the gradient, so the token gets -A·0.5. The fixed dual clip gives the full -A.
    logp, old = with_ratios([[1.0]])
    adv = torch.tensor([-1.0], dtype=F64)
    mask = torch.ones(1, 1, dtype=F64)
    prefix, _ = pl.gppo(logp, old, adv, mask, dual_clip_at_one=True)
    fixed, _ = pl.gppo(logp, old, adv, mask)
    close(grad_of(prefix, logp), [[0.5]])
    close(grad_of(fixed, logp), [[1.0]])


# --- cispo, sapo ----------------------------------------------------------------------------------
def test_cispo_by_hand():
    # Ratios 0.5, 1.5, 8.0 with TRL's bounds (None, 5): weights 0.5, 1.5, 5 (detached); A = 2.
    logp, old = with_ratios([[0.5, 1.5, 8.0]])
    adv = torch.tensor([2.0], dtype=F64)
    loss, metrics = pl.cispo(logp, old, adv, torch.ones(1, 3, dtype=F64))
    close(loss, -torch.tensor([[0.5, 1.5, 5.0]], dtype=F64) * 2.0 * logp.detach())
    close(grad_of(loss, logp), [[-1.0, -3.0, -10.0]])  # -w·A: every token keeps a gradient
    assert metrics["clip_fraction"] == pytest.approx(1 / 3)
    # verl's bounds (1 - 0.2, 1 + 0.28): weights 0.8, 1.28, 1.28.
    loss, _ = pl.cispo(logp, old, adv, torch.ones(1, 3, dtype=F64), ratio_min=0.8, ratio_max=1.28)
    close(grad_of(loss, logp), [[-1.6, -2.56, -2.56]])


def test_sapo_by_hand():
    # f(ρ) = σ(τ(ρ-1))·4/τ. ρ = 1: f = 2/τ, f' = 1. A = +1 uses τ_pos = 1, A = -1 uses τ_neg = 2 (set here).
    logp, old = with_ratios([[1.0, 2.0], [1.0, 0.5]])
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    loss, _ = pl.sapo(logp, old, adv, torch.ones(2, 2, dtype=F64), temperature_pos=1.0, temperature_neg=2.0)
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    close(loss, [[-2.0, -4.0 * sig(1.0)], [1.0, 2.0 * sig(-1.0)]])
    # d/dlogp [-A·f(ρ)] = -A·f'(ρ)·ρ with f'(ρ) = 4·σ'(τ(ρ-1)).
    dsig = lambda x: sig(x) * (1 - sig(x))  # noqa: E731
    close(grad_of(loss, logp), [[-1.0, -4.0 * dsig(1.0) * 2.0], [1.0, 4.0 * dsig(-1.0) * 0.5]])


# --- reinforce ----------------------------------------------------------------------------------
def test_reinforce_single_update_trick():
    logp = torch.tensor([[-0.5, -1.5], [-0.2, -3.0]], dtype=F64, requires_grad=True)
    adv = torch.tensor([2.0, -1.0], dtype=F64)
    mask = torch.ones(2, 2, dtype=F64)
    loss, metrics = pl.reinforce(logp, logp.detach(), adv, mask, clip_low=0.2)
    close(loss, [[-2.0, -2.0], [1.0, 1.0]])
    close(grad_of(loss, logp), [[-2.0, -2.0], [1.0, 1.0]])
    assert metrics["clip_fraction"] == 0.0 and metrics["ratio_mean"] == pytest.approx(1.0)


def test_reinforce_never_clips():
    logp, old = with_ratios([[3.0, 0.1]])
    loss, _ = pl.reinforce(logp, old, torch.tensor([1.0], dtype=F64), torch.ones(1, 2, dtype=F64))
    close(loss, [[-3.0, -0.1]])
    close(grad_of(loss, logp), [[-3.0, -0.1]])


def test_policy_losses_registered():
    for name in ["ppo_clip", "gspo", "gppo", "cispo", "sapo", "reinforce"]:
        assert POLICY_LOSSES.get(name) is getattr(pl, name)


# --- KL estimators ------------------------------------------------------------------------------
def test_kl_estimators_by_hand():
    # Row 0: π = 0.5, π_ref = 0.25 -> log ratio log 2; k3 = 0.5 - (-log 2) - 1 = log 2 - 0.5.
    # Row 1: π = 0.25, π_ref = 0.5 -> k1 = -log 2; k3 = 2 - log 2 - 1 = 1 - log 2.
    logp = torch.log(torch.tensor([[0.5], [0.25]], dtype=F64))
    ref = torch.log(torch.tensor([[0.25], [0.5]], dtype=F64))
    ln2 = math.log(2)
    close(kl.k1(logp, ref), [[ln2], [-ln2]])
    close(kl.k2(logp, ref), [[0.5 * ln2**2], [0.5 * ln2**2]])
    close(kl.k3(logp, ref), [[ln2 - 0.5], [1 - ln2]])


def test_k3_nonnegative_and_close_to_k2_for_small_differences():
    torch.manual_seed(0)
    logp = -torch.rand(4, 50, dtype=F64) * 3
    ref = logp + torch.randn(4, 50, dtype=F64)
    assert (kl.k3(logp, ref) >= 0).all()
    near = logp + 1e-2 * torch.randn(4, 50, dtype=F64)
    d = (logp - near).abs()
    # k3 = d²/2 + O(d³) with the cubic term at most |d|³/6 (+ smaller) -> bound 0.2·|d|³.
    assert ((kl.k3(logp, near) - kl.k2(logp, near)).abs() <= 0.2 * d**3 + 1e-15).all()


def test_k3_clamps_like_verl_low_var_kl():
    logp = torch.tensor([[0.0, -30.0]], dtype=F64)
    ref = torch.tensor([[-30.0, 0.0]], dtype=F64)
    # exp(-20) + 20 - 1 = 19.000000002 -> 10; exp(20) - 21 -> 10.
    close(kl.k3(logp, ref), [[10.0, 10.0]])


def test_k3_unclamped_is_trl_k3_far_from_the_reference():
    # log(π_ref/π) = 3: k3 = e^3 - 3 - 1 = 16.0855 unclamped (TRL), 10 clamped (verl); gradients 1 - e^3 and 0.
    logp = torch.tensor([[-4.0, -1.0]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-1.0, -1.5]], dtype=F64)
    e3 = math.exp(3.0)
    close(kl.k3_unclamped(logp, ref), [[e3 - 4.0, math.exp(-0.5) + 0.5 - 1.0]])
    close(kl.k3(logp, ref), [[10.0, math.exp(-0.5) + 0.5 - 1.0]])
    (unclamped,) = torch.autograd.grad(kl.k3_unclamped(logp, ref).sum(), logp)
    (clamped,) = torch.autograd.grad(kl.k3(logp, ref).sum(), logp)
    close(unclamped, [[1.0 - e3, 1.0 - math.exp(-0.5)]])
    close(clamped, [[0.0, 1.0 - math.exp(-0.5)]])


def test_kl_gradients_and_reference_is_constant():
    logp = torch.tensor([[-1.0]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-1.5]], dtype=F64, requires_grad=True)
    (g1,) = torch.autograd.grad(kl.k1(logp, ref).sum(), logp)
    (g3,) = torch.autograd.grad(kl.k3(logp, ref).sum(), logp)
    close(g1, [[1.0]])
    close(g3, [[1.0 - math.exp(-0.5)]])  # d/dlogp [e^(ref-logp) - (ref-logp) - 1] = 1 - e^(ref-logp)
    kl.k2(logp, ref).sum().backward()
    assert ref.grad is None


def test_kl_aliases_and_shape_error():
    assert KL_ESTIMATORS.get("kl") is kl.k1 and KL_ESTIMATORS.get("mse") is kl.k2
    assert KL_ESTIMATORS.get("low_var_kl") is kl.k3 and KL_ESTIMATORS.get("k3") is kl.k3
    assert KL_ESTIMATORS.get("k3_clamped") is kl.k3 and KL_ESTIMATORS.get("k3_unclamped") is kl.k3_unclamped
    with pytest.raises(ValueError, match="mmpost.algos.kl: ref_logprobs"):
        kl.k1(torch.zeros(2, 3), torch.zeros(2, 2))
