"""SFT losses against values and gradients worked out by hand.

Target-token probabilities p = 0.5, 0.25 (row 0) and 0.9, 0.001 (row 1).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from mmpost.algos import sft_losses as sft
from mmpost.registry import SFT_LOSSES

F64 = torch.float64
P = torch.tensor([[0.5, 0.25], [0.9, 0.001]], dtype=F64)
MASK = torch.ones(2, 2, dtype=F64)


def logp_leaf():
    return torch.log(P).clone().requires_grad_(True)


def close(actual, expected, tol=1e-9):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert torch.allclose(actual, expected, atol=tol, rtol=0), f"{actual} != {expected}"


def grad_of(loss, leaf):
    (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return grad


def test_cross_entropy_by_hand():
    logp = logp_leaf()
    loss = sft.cross_entropy(logp, MASK)
    close(loss, [[math.log(2), math.log(4)], [-math.log(0.9), math.log(1000)]])
    close(grad_of(loss, logp), -torch.ones(2, 2, dtype=F64))


def test_dft_by_hand():
    # -p·log p: 0.5·ln2, 0.25·ln4 (also 0.5·ln2), 0.9·(-ln 0.9), 0.001·ln1000; gradient -p.
    logp = logp_leaf()
    loss = sft.dft(logp, MASK)
    close(loss, [[0.5 * math.log(2), 0.5 * math.log(2)], [-0.9 * math.log(0.9), 0.001 * math.log(1000)]])
    close(grad_of(loss, logp), -P)


def test_chord_phi_by_hand():
    # -p(1-p)·log p: 0.25·ln2, 0.1875·ln4, 0.09·(-ln 0.9), 0.000999·ln1000; gradient -p(1-p).
    logp = logp_leaf()
    loss = sft.chord_phi(logp, MASK)
    close(loss, [[0.25 * math.log(2), 0.1875 * math.log(4)], [-0.09 * math.log(0.9), 0.000999 * math.log(1000)]])
    close(grad_of(loss, logp), -P * (1 - P))


def test_dft_gradient_through_logits_is_p_times_ce_gradient():
    # logits (0, 0, ln 2): softmax (0.25, 0.25, 0.5); target 2, p = 0.5.
    # CE gradient = softmax - onehot = (0.25, 0.25, -0.5); DFT gradient = p · that = (0.125, 0.125, -0.25).
    logits = torch.tensor([[[0.0, 0.0, math.log(2)]]], dtype=F64, requires_grad=True)
    logp = torch.log_softmax(logits, -1)[..., 2]
    close(grad_of(sft.cross_entropy(logp, torch.ones(1, 1)), logits), [[[0.25, 0.25, -0.5]]])
    logp = torch.log_softmax(logits, -1)[..., 2]
    close(grad_of(sft.dft(logp, torch.ones(1, 1)), logits), [[[0.125, 0.125, -0.25]]])


# ASFT on one token, vocabulary 2: current (0.5, 0.5), reference (0.75, 0.25), target token 0 (p = 0.5).
#   forward KL(ref‖cur) = 0.75·ln(1.5) + 0.25·ln(0.5)
#   reverse KL(cur‖ref) = 0.5·ln(0.5/0.75) + 0.5·ln(2)
#   DFT = 0.5·ln 2
CUR = torch.tensor([[[0.5, 0.5]]], dtype=F64)
REF = torch.tensor([[[0.75, 0.25]]], dtype=F64)
FORWARD_KL = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
REVERSE_KL = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2)


def test_asft_by_hand_both_directions():
    logp = torch.log(CUR[..., 0])
    kwargs = {"log_dist": torch.log(CUR), "ref_log_dist": torch.log(REF), "kl_weight": 0.1}
    forward = sft.asft(logp, torch.ones(1, 1), **kwargs)
    reverse = sft.asft(logp, torch.ones(1, 1), kl_direction="reverse", **kwargs)
    close(forward, [[0.5 * math.log(2) + 0.1 * FORWARD_KL]])
    close(reverse, [[0.5 * math.log(2) + 0.1 * REVERSE_KL]])
    assert FORWARD_KL != pytest.approx(REVERSE_KL)
    # "forward" is what the official code's F.kl_div(log p_cur, p_ref) computes.
    official = F.kl_div(torch.log(CUR), REF, reduction="none").sum(-1)
    close(forward - sft.dft(logp, torch.ones(1, 1)), 0.1 * official)


def test_asft_gradient_through_logits():
    # Equal logits -> (0.5, 0.5). DFT part: -p·(onehot - softmax) = -0.5·(0.5, -0.5) = (-0.25, 0.25).
    # Forward KL(ref‖softmax(z)) gradient = softmax - ref = (-0.25, 0.25), times 0.1.
    logits = torch.zeros(1, 1, 2, dtype=F64, requires_grad=True)
    log_dist = torch.log_softmax(logits, -1)
    loss = sft.asft(log_dist[..., 0], torch.ones(1, 1), log_dist=log_dist, ref_log_dist=torch.log(REF))
    close(grad_of(loss, logits), [[[-0.275, 0.275]]])


def test_asft_zero_reference_probability_is_finite():
    ref = torch.log(torch.tensor([[[1.0, 0.0]]], dtype=F64))  # contains -inf
    loss = sft.asft(torch.log(CUR[..., 0]), torch.ones(1, 1), log_dist=torch.log(CUR), ref_log_dist=ref, kl_weight=1.0)
    close(loss, [[0.5 * math.log(2) + math.log(2)]])  # KL((1,0)‖(.5,.5)) = ln 2


def test_asft_errors():
    logp = torch.log(CUR[..., 0])
    with pytest.raises(ValueError, match=r"mmpost.algos.sft_losses: asft needs .*\['log_dist', 'ref_log_dist'\]"):
        sft.asft(logp, torch.ones(1, 1))
    with pytest.raises(ValueError, match="kl_direction"):
        sft.asft(logp, torch.ones(1, 1), log_dist=torch.log(CUR), ref_log_dist=torch.log(REF), kl_direction="both")
    with pytest.raises(ValueError, match=r"\[N, T, V\]"):
        sft.asft(logp, torch.ones(1, 1), log_dist=torch.log(CUR), ref_log_dist=torch.log(REF)[..., :1])


def test_registry_and_full_distribution_flags():
    for name in ["cross_entropy", "dft", "chord_phi", "asft"]:
        fn = SFT_LOSSES.get(name)
        assert fn is getattr(sft, name)
        assert fn.needs_full_distribution is (name == "asft")
    with pytest.raises(ValueError, match="mmpost.algos.sft_losses: logprobs and mask"):
        sft.dft(torch.zeros(2, 3), torch.zeros(2, 2))


def test_sa_dft_by_hand():
    from mmpost.algos.sft_losses import sa_dft, sa_dft_exponent

    # DFT repo classes: digits 0.3, stopwords/punctuation/empty 1.0, anything else 0.7 (byte-level markers removed).
    assert [sa_dft_exponent(t) for t in ["Ġ42", "x2", "Ġthe", "ĠThe", ",", "Ċ", "", "Ġ(of)", "Ġcat", "▁dog"]] == \
        [0.3, 0.3, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.7]
    assert sa_dft_exponent("Ġcat", default_weight=0.5) == 0.5
    logp = torch.log(torch.tensor([[0.25, 0.5]], dtype=torch.float64)).requires_grad_(True)
    w = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    loss = sa_dft(logp, torch.ones(1, 2), token_exponents=w)
    # -sg(p^w) log p: 0.25^0.5 = 0.5 -> -0.5 log 0.25; w = 1 is DFT: -0.5 log 0.5.
    assert loss.detach()[0].tolist() == pytest.approx([-0.5 * math.log(0.25), -0.5 * math.log(0.5)])
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert grad[0].tolist() == pytest.approx([-0.5, -0.5])
    with pytest.raises(ValueError, match="token_exponents"):
        sa_dft(logp, torch.ones(1, 2))
