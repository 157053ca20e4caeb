"""benchmarks/world_env_wider_heldout.py: the per-seed gain statistics, by hand."""
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
