"""benchmarks/world_env_diagnosis.py's per-step table on two hand-made episodes of two steps: drift, the
reflector's false and true calls, the episode verdict against the truth, the perfect reader's verdict, and the
visible target pixels the reflector reads success from."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from world_env_diagnosis import per_step_table, target_pixels  # noqa: E402

from mmpost.tasks.world_env.env import TARGET_VALUE, WorldEnvConfig, pixel_centre, render_frame, success_score  # noqa: E402


def test_per_step_table_by_hand():
    config = WorldEnvConfig()
    target = np.array([0.5, 0.5])
    # episode 0 reaches the target at step 2 and is imagined exactly; episode 1 stays away, but its imagined robot
    # drifts onto the target at step 2 (the robot disc hides the target disc: no target pixel left visible)
    true_pos = np.array([[[0.2, 0.5], [0.5, 0.5]], [[0.2, 0.2], [0.3, 0.3]]])
    imagined_pos = np.array([[[0.2, 0.5], [0.5, 0.5]], [[0.2, 0.2], [0.5, 0.5]]])
    render = lambda positions: np.array([[render_frame(p, target, config) for p in row] for row in positions])  # noqa: E731
    data = {"config": config, "pixel_centre": pixel_centre, "frames": render(imagined_pos), "gt_frames": render(true_pos),
            "true_pos": true_pos, "targets": np.stack([target, target]),
            "true_success": np.array([[False, True], [False, False]]),
            "scores": np.array([[0.1, 0.99], [0.2, 0.98]]), "gt_scores": np.array([[0.1, 0.99], [0.2, 0.3]]),
            "true_score": np.array([[success_score(p, target, config) for p in row] for row in true_pos]),
            "threshold": 0.9, "cpu_seconds": 1.0, "group": 2}
    rows, summary = per_step_table(data)
    full_target = int((render_frame(np.array([0.9, 0.9]), target, config) == TARGET_VALUE).sum())
    assert full_target > 0 and target_pixels(data["frames"])[1, 1] == 0
    assert rows[0]["drift_px"] < 0.3  # the centroid of a rendered disc is within 0.3 px of its centre
    gap = np.linalg.norm(np.subtract(pixel_centre(imagined_pos[1, 1], config), pixel_centre(true_pos[1, 1], config)))
    assert rows[1]["drift_px"] == pytest.approx(gap / 2, abs=0.3)  # mean of 0 (episode 0) and the gap (episode 1)
    assert rows[1]["true_success"] == 0.5 and rows[1]["called"] == 1.0
    assert rows[1]["fp_rate"] == 1.0 and rows[1]["tp_rate"] == 1.0 and rows[1]["gt_frame_fp_rate"] == 0.0
    assert rows[1]["looks_fp"] == 1.0 and rows[1]["looks_success"] == 1.0
    assert rows[0]["target_px_true"] == full_target and rows[1]["target_px_imagined"] == 0.0
    assert rows[1]["target_px_true"] == pytest.approx(full_target / 2)
    # episodes: both claimed at step 2, one truly reached -> agreement 1/2; the reader sees the same
    assert summary["claimed_success"] == 1.0 and summary["true_success_of_same_steps"] == 0.5
    assert summary["agreement"] == 0.5 and summary["reader_agreement"] == 0.5
    assert summary["fp_rate_all_steps"] == pytest.approx(1 / 3) and summary["tp_rate_all_steps"] == 1.0
    assert summary["false_call_target_px_imagined"] == 0.0 and summary["false_call_target_px_true"] == full_target
    assert summary["false_call_looks_success"] == 1.0
    # returns as GRPO sees them: both end at step 2 with scores 0.99 / 0.98; truly 1 (reached) and s(0.3, 0.3)
    true_return = success_score(true_pos[1, 1], target, config)
    assert summary["return_imagined"] == pytest.approx(0.985) and summary["return_true"] == pytest.approx((1 + true_return) / 2)
    assert summary["return_gap_abs"] == pytest.approx((0.01 + abs(0.98 - true_return)) / 2)
    assert summary["advantage_sign_agreement"] == 1.0 and summary["return_within_group_correlation"] == pytest.approx(1.0)
    # on the GT frames episode 1 is never called: its return is its last step's GT score 0.3 against the true one
    assert summary["gt_frame_return_imagined"] == pytest.approx((0.99 + 0.3) / 2)
    assert summary["gt_frame_return_gap_abs"] == pytest.approx((0.01 + abs(0.3 - true_return)) / 2)


def test_return_fidelity_by_hand():
    """One group of 3: imagined returns (0.2, 0.5, 0.8) at the last step, true (0.9, 0.1, 0.2) -> advantage signs
    (-, +, +) vs (+, -, -): none agree; correlation of the two triples by hand."""
    from world_env_diagnosis import return_fidelity

    scores = np.array([[0.0, 0.2], [0.0, 0.5], [0.0, 0.8]])
    true_score = np.array([[0.0, 0.9], [0.0, 0.1], [0.0, 0.2]])
    out = return_fidelity(scores, true_score, np.zeros((3, 2), dtype=bool), np.array([2, 2, 2]), 3)
    a, b = np.array([0.2, 0.5, 0.8]), np.array([0.9, 0.1, 0.2])
    expected = ((a - a.mean()) * (b - b.mean())).sum() / np.sqrt(((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum())
    assert out["advantage_sign_agreement"] == 0.0 and out["return_within_group_correlation"] == pytest.approx(expected)
    assert out["return_gap_abs"] == pytest.approx((0.7 + 0.4 + 0.6) / 3)


def test_return_fidelity_signed_fraction_and_the_success_call_return():
    """Two groups of 2. A 0/1 return (the reflector's success call) leaves the second group flat: only the first
    group's 2 episodes carry an advantage sign (fraction 2/4); there the call (1, 0) and the truth (1, 0.2) agree."""
    from world_env_diagnosis import return_fidelity

    called = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    true_score = np.array([[0.5, 1.0], [0.1, 0.2], [0.3, 0.4], [0.6, 0.9]])
    truth = true_score >= 1.0
    first_call = np.array([1, 2, 2, 2])
    out = return_fidelity(called, true_score, truth, first_call, 2)
    assert out["advantage_signed_fraction"] == 0.5 and out["advantage_sign_agreement"] == 1.0
    assert out["return_imagined"] == 0.25 and out["return_true"] == pytest.approx((1.0 + 0.2 + 0.4 + 0.9) / 4)
