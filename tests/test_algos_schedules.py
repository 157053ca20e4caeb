"""Schedules at their boundaries, against values worked out by hand."""
import math

import pytest

from mmpost.algos import schedules as sch
from mmpost.registry import SCHEDULES


def test_constant():
    assert sch.constant(0) == 1.0
    assert sch.constant(12345, value=0.3) == 0.3


def test_chord_mu_defaults_by_hand():
    # warmup 200, decay 400, peak 0.5, valley 0.02 (Trinity-RFT mix_chord example).
    assert sch.chord_mu(0) == 0.0
    assert sch.chord_mu(100) == pytest.approx(0.25)  # half-way up the warm-up
    assert sch.chord_mu(200) == pytest.approx(0.5)  # decay starts at the peak: cos 0 = 1
    assert sch.chord_mu(400) == pytest.approx(0.48 * 0.5 + 0.02)  # cos(π/2) = 0
    assert sch.chord_mu(599) == pytest.approx(0.48 * 0.5 * (1 + math.cos(math.pi * 399 / 400)) + 0.02)
    assert sch.chord_mu(600) == 0.02
    assert sch.chord_mu(10_000) == 0.02


def test_chord_mu_zero_warmup_and_zero_decay():
    # CHORD-μ yaml comment: warmup 0, decay 200, peak 0.9, valley 0.05 -> starts at the peak.
    assert sch.chord_mu(0, warmup=0, decay=200, peak=0.9, valley=0.05) == pytest.approx(0.9)
    assert sch.chord_mu(100, warmup=0, decay=200, peak=0.9, valley=0.05) == pytest.approx(0.85 * 0.5 + 0.05)
    # CHORD-φ yaml comment: warmup 0, decay 0, peak = valley = 0.1 -> constant 0.1.
    assert [sch.chord_mu(s, warmup=0, decay=0, peak=0.1, valley=0.1) for s in (0, 1, 500)] == [0.1, 0.1, 0.1]
    # A warm-up with no decay drops straight to the valley.
    assert sch.chord_mu(5, warmup=10, decay=0, peak=0.5, valley=0.02) == pytest.approx(0.25)
    assert sch.chord_mu(10, warmup=10, decay=0, peak=0.5, valley=0.02) == 0.02


def test_linear():
    kw = {"start": 1.0, "end": 0.0, "steps": 10}
    assert [sch.linear(s, **kw) for s in (0, 5, 10, 20)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert sch.linear(3, start=0.2, end=0.4, steps=4) == pytest.approx(0.35)
    assert sch.linear(0, start=1.0, end=2.0, steps=0) == 2.0


def test_cosine():
    kw = {"start": 1.0, "end": 0.0, "steps": 4}
    assert sch.cosine(0, **kw) == pytest.approx(1.0)
    assert sch.cosine(1, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # 0.8536
    assert sch.cosine(2, **kw) == pytest.approx(0.5)
    assert sch.cosine(4, **kw) == pytest.approx(0.0)
    assert sch.cosine(9, **kw) == pytest.approx(0.0)
    # Prefix-RFT style 95% -> 5% decay, increasing direction works too.
    assert sch.cosine(50, start=0.95, end=0.05, steps=100) == pytest.approx(0.5)
    assert sch.cosine(1, start=0.0, end=1.0, steps=2) == pytest.approx(0.5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="mmpost.algos.schedules: chord_mu step"):
        sch.chord_mu(-1)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        sch.chord_mu(3, warmup=-5)
    with pytest.raises(ValueError, match="linear steps must be >= 0"):
        sch.linear(1, start=0.0, end=1.0, steps=-2)


def test_registered_names():
    for name in ["constant", "chord_mu", "linear", "cosine"]:
        assert SCHEDULES.get(name) is getattr(sch, name)
