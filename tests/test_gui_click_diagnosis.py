"""benchmarks/gui_click_diagnosis.py's pure functions, against hand-computed values."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gui_click_diagnosis import axis_miss, greedy_summary, summarise_metrics, variance_shares  # noqa: E402


def test_axis_miss_counts_pixels_outside_the_box_per_axis():
    box = (10.0, 20.0, 30.0, 40.0)
    assert axis_miss((20.0, 30.0), box) == (0.0, 0.0)   # inside
    assert axis_miss((5.0, 30.0), box) == (5.0, 0.0)    # left of the box, within its rows
    assert axis_miss((36.0, 50.0), box) == (6.0, 10.0)  # below and to the right


def test_variance_shares_split_the_weighted_reward_and_show_a_part_working_against_it():
    weights = {"in_box": 1.0, "distance": 0.5}
    # Both parts agree: R = 1.5 and 0 (mean 0.75, variance sum 1.125); cov(in, R) = 0.75, cov(0.5 dist, R) = 0.375.
    agree = [[{"in_box": 1.0, "distance": 1.0}, {"in_box": 0.0, "distance": 0.0}]]
    shares = variance_shares(agree, weights)
    assert shares["in_box"] == pytest.approx(2 / 3) and shares["distance"] == pytest.approx(1 / 3)
    # They disagree: R = 1 and 0.5 (variance sum 0.125); cov(in, R) = 0.25, cov(0.5 dist, R) = -0.125.
    disagree = [[{"in_box": 1.0, "distance": 0.0}, {"in_box": 0.0, "distance": 1.0}]]
    shares = variance_shares(disagree, weights)
    assert shares["in_box"] == pytest.approx(2.0) and shares["distance"] == pytest.approx(-1.0)
    # A flat group adds nothing; all flat gives NaN rather than a division by zero.
    assert math.isnan(variance_shares([[{"in_box": 1.0, "distance": 0.3}] * 2], weights)["in_box"])


def test_greedy_summary_sorts_misses_by_axis_and_element():
    box = [0, 0, 10, 10]
    records = [
        {"in_box": True, "point": (5, 5), "box": box},
        {"in_box": False, "point": (14, 5), "box": box, "miss_x": 4.0, "miss_y": 0.0, "on_other_element": True},
        {"in_box": False, "point": (5, 30), "box": box, "miss_x": 0.0, "miss_y": 20.0, "on_other_element": False},
        {"in_box": False, "point": None, "box": box},
    ]
    s = greedy_summary(records)
    assert s["greedy_accuracy"] == 0.25 and s["misses"] == 3 and s["unparsed"] == 1
    assert (s["miss_on_other_element"], s["miss_on_no_element"]) == (1, 1)
    assert (s["miss_x_only"], s["miss_y_only"], s["miss_both_axes"]) == (1, 1, 0)
    assert s["mean_px_outside_x"] == 2.0 and s["mean_px_outside_y"] == 10.0
    assert s["median_px_outside"] == 12.0 and s["misses_within_4px"] == 1


def test_summarise_metrics_reports_the_adversarial_kl_factor_over_beta_0():
    rows = [{"step": i + 1, "reward/gui_point_in_box": 0.5, "loss/kl_coef": coef} for i, coef in enumerate([0.04, 0.08, 0.04, 0.2])]
    windows = summarise_metrics(rows, 2, 0.04)
    assert [w["steps"] for w in windows] == ["1-2", "3-4"]
    assert windows[0]["kl_factor"] == pytest.approx(1.5) and windows[1]["kl_factor_max"] == pytest.approx(5.0)
    assert windows[0]["in_box"] == 0.5 and math.isnan(windows[0]["entropy"])


def test_greedy_flips_count_changes_between_two_models():
    from gui_click_diagnosis import greedy_flips

    before = [{"in_box": True, "point": (1, 1)}, {"in_box": False, "point": (2, 2)}, {"in_box": False, "point": None}]
    after = [{"in_box": False, "point": (9, 9)}, {"in_box": True, "point": (3, 3)}, {"in_box": False, "point": None}]
    assert greedy_flips(before, after) == {"right_to_wrong": 1, "wrong_to_right": 1, "same_point": 0, "screens": 3}
    assert greedy_flips(before, before)["same_point"] == 2
