"""benchmarks/world_env_wider_heldout.py: the per-seed gain statistics, by hand; repeated held-out configurations
played once and the fresh ones found; the held-out rows never share a start with the training rows."""
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


def test_gain_statistics_by_hand():
    from world_env_wider_heldout import gain_statistics

    # gains 0.1 / 0.2 / 0.3: mean 0.2, sample std 0.1, SE 0.1 / sqrt(3) = 0.0577, mean / SE = 3.46
    stats = gain_statistics([0.1, 0.2, 0.3])
    assert stats["mean"] == pytest.approx(0.2) and stats["std"] == pytest.approx(0.1)
    assert stats["se"] == pytest.approx(0.1 / 3 ** 0.5) and stats["in_se"] == pytest.approx(2 * 3 ** 0.5)
    # one seed has no spread: std and SE undefined, not zero
    single = gain_statistics([0.05])
    assert single["mean"] == pytest.approx(0.05) and single["std"] != single["std"]


def row(position, target):
    return {"position": list(position), "target": list(target)}


def test_distinct_and_fresh_configurations_by_hand():
    from world_env_wider_heldout import distinct_configurations, fresh_configurations

    a, b, c, d = row((0.1, 0.2), (0.5, 0.5)), row((0.1, 0.2), (0.2, 0.8)), row((0.3, 0.2), (0.5, 0.5)), row((0.9, 0.9), (0.5, 0.5))
    rows = [a, b, a, c, b, d, c, d]
    unique, index = distinct_configurations(rows)
    assert unique == [a, b, c, d] and index == [0, 1, 0, 2, 1, 3, 2, 3]
    # rows 0-2 seen (a, b); from row 3 on the new configurations are c (row 3) and d (row 5), each once
    assert fresh_configurations(rows, 3, 3) == [3, 5]
    assert fresh_configurations(rows, 4, 4) == [5]  # c was seen in row 3
    assert fresh_configurations(rows, 2, 2) == [3, 5]  # a and b were seen in rows 0-1


def test_heldout_rows_extend_and_never_share_a_start_with_training():
    from world_env_wider_heldout import fresh_configurations, heldout_rows

    from mmpost.tasks.world_env.task import WorldEnvTask

    rows = heldout_rows(768)
    assert [r["id"] for r in rows[:64]] == [r["id"] for r in heldout_rows(64)]  # the split extends
    train = WorldEnvTask(train_size=512).load("train")
    assert not {tuple(r["position"]) for r in rows} & {tuple(r["position"]) for r in train}
    fresh = fresh_configurations(rows, 256, 256)
    assert len(fresh) == 130 and min(fresh) >= 256  # measured 2026-12-07: rows 256-767 hold 130 new configurations
