"""metrics.jsonl and curves.png: the moving average by hand, and what the figure shows."""
import pytest
from PIL import Image

from mmpost.metrics import curves_title, plot_curves, smooth, smoothing_window


def test_moving_average_by_hand():
    # window 2 over [1, missing, 3, 5, 7]: [1], [1] (missing skipped), [3], [3, 5], [5, 7]
    assert smooth([1.0, None, 3.0, 5.0, 7.0], 2).tolist() == [1.0, 1.0, 3.0, 4.0, 6.0]
    assert smooth([2.0, float("nan"), 4.0], 3).tolist() == [2.0, 2.0, 3.0]
    assert smoothing_window(5) == 1 and smoothing_window(100) == 10 and smoothing_window(5000) == 50


def test_curves_show_smoothed_reward_loss_kl_and_heldout_before_after(tmp_path):
    records = [{"step": s, "reward/mean": 0.1 * s, "reward/exact_match": 0.05 * s, "loss/total": 1.0 / s,
                "loss/kl": 0.01 * s, "eval/shapes/accuracy": 0.4 if s == 10 else None} for s in range(1, 21)]
    title = curves_title(run="visurf", method="visurf", task="shapes", model="tiny-qwen2.5-vl-shapes", steps=20)
    texts = plot_curves(records, tmp_path / "curves.png", title=title, heldout={"before": 0.25, "after": 0.5, "name": "shapes"})
    assert title == "visurf: visurf on shapes | model tiny-qwen2.5-vl-shapes | 20 steps" and title in texts
    assert "reward/mean (raw, and mean of 2)" in texts and "reward/exact_match" in texts
    assert "loss/total" in texts and "loss/kl" in texts and "eval/shapes/accuracy" in texts
    assert "before: 0.250" in texts and "after: 0.500" in texts
    assert Image.open(tmp_path / "curves.png").size == (1100, 700)


def test_curves_say_what_a_run_did_not_have(tmp_path):
    texts = plot_curves([{"step": 1, "reward/mean": 0.5, "loss/total": 0.1}], tmp_path / "c.png", title="t")
    assert "no KL term (algorithm.kl_coef = 0)" in texts and "no held-out evaluation in this run" in texts
