"""benchmarks/visurf_diagnosis.py's pure parts against hand-computed values."""
import math
import sys

import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from visurf_diagnosis import label_advantage, paired, weighted_window  # noqa: E402

from mmpost.registry import ADVANTAGES


def test_label_advantage_by_hand_and_against_grpo():
    # no rollout right: one 1 among 9, mean 1/9, unbiased std 1/3 -> (8/9) * 3
    assert label_advantage(0, 8) == pytest.approx(8 / 3)
    # one right: two 1s among 9, mean 2/9, var (2 (7/9)^2 + 7 (2/9)^2) / 8 = 126/648
    assert label_advantage(1, 8) == pytest.approx((7 / 9) / math.sqrt(126 / 648))
    assert label_advantage(8, 8) == 0.0
    for k in range(8):  # the engine's GRPO advantage of the label row, format part equal on every row
        rewards = torch.tensor([1.5] * k + [0.5] * (8 - k) + [1.5])
        grpo = ADVANTAGES.get("grpo")(rewards, torch.zeros(9, dtype=torch.long))
        assert grpo[-1].item() == pytest.approx(label_advantage(k, 8), rel=1e-5)


def test_paired_and_weighted_window_by_hand():
    d = paired([0.7, 0.6, 0.8], [0.6, 0.7, 0.6])
    assert d["per_seed"] == pytest.approx([0.1, -0.1, 0.2])
    assert d["mean"] == pytest.approx(0.2 / 3)
    assert d["se"] == pytest.approx(d["std"] / math.sqrt(3))
    records = [{"a": 1.0, "n": 1.0}, {"a": 3.0, "n": 3.0}, {"n": 2.0}, {"a": float("nan"), "n": 5.0}]
    assert weighted_window(records, "a", "n", 0, 4) == pytest.approx((1 + 9) / 4)
    assert weighted_window(records, "a", None, 0, 2) == pytest.approx(2.0)
    assert math.isnan(weighted_window(records, "b", None, 0, 4))


def test_control_pairs_match_seeds_across_results_files(tmp_path, monkeypatch):
    """The control's seeds are paired with the same seeds of the methods, wherever each file holds them."""
    import json

    import visurf_diagnosis

    def run(seed, after, colour):
        return {"seed": seed, "after": after, "summary": {"heldout_accuracy_color_after": colour,
                                                          "heldout_accuracy_count_after": 0.5,
                                                          "heldout_accuracy_position_after": 0.5}}

    methods = lambda seeds, base: {m: [run(s, base + 0.01 * s, 0.9) for s in seeds] for m in ("SFT", "ViSurf", "GRPO")}
    (tmp_path / "learning.json").write_text(json.dumps({"runs": methods([0, 1], 0.6)}))
    (tmp_path / "more.json").write_text(json.dumps({"runs": methods([3], 0.5)}))
    (tmp_path / "control.json").write_text(json.dumps({"runs": {"mix": [run(3, 0.7, 1.0), run(0, 0.65, 1.0)]}}))
    monkeypatch.setattr(visurf_diagnosis, "RESULTS", tmp_path)
    out = visurf_diagnosis.control_pairs(["control"], "more")
    assert out["SFT"]["seeds"] == [0, 3]
    # seed 0: 0.65 - 0.60; seed 3: 0.70 - 0.53
    assert out["SFT"]["all"]["per_seed"] == pytest.approx([0.05, 0.17])
    assert out["GRPO"]["color"]["per_seed"] == pytest.approx([0.1, 0.1])
