"""benchmarks/world_env_wider_heldout.py: the per-seed gain statistics, by hand; repeated held-out configurations
played once and the fresh ones found; the held-out rows never share a start with the training rows."""
import statistics
import sys
from pathlib import Path

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


def test_gain_line_and_paired_differences_by_hand():
    from world_env_wider_heldout import gain_line, paired_differences

    # this set 0.10 / 0.20 / 0.00 against 0.05 / 0.10 / 0.10: differences 0.05 / 0.10 / -0.10; the part the other lacks
    # is left out
    other = {"fresh": {"per_seed": [0.05, 0.10, 0.10]}}
    differences = paired_differences({"fresh": [0.10, 0.20, 0.00], "all": [0.1, 0.1, 0.1]}, other)
    assert list(differences) == ["fresh"] and differences["fresh"] == pytest.approx([0.05, 0.10, -0.10])
    # mean 0.1, std 0.1, SE 0.0577, 1.7 SE
    assert gain_line("p", 0.3, [0.1, 0.2, 0.0]) == "| p | 0.300 | +0.100 / +0.200 / +0.000 | +0.100 ± 0.100 | 0.058 | +1.7 |"
    assert gain_line("p", None, [0.1, 0.2, 0.0]).startswith("| p | - | +0.100")


def fake_heldout(monkeypatch, rows):
    """learning_world_env.sampled_success without a model: held-out row r's episode j succeeds iff j < r."""
    from types import SimpleNamespace

    import learning_world_env
    import mmpost.envs

    from mmpost.envs.base import EpisodeStats

    task = SimpleNamespace(chunk=4, max_policy_calls=4, ground_truth_env=lambda: None)
    monkeypatch.setattr(learning_world_env, "heldout_run",
                        lambda model_dir, heldout: SimpleNamespace(task=task, heldout_rows=rows[:heldout], policy=None,
                                                                   backend=None))

    def run_episodes(policy, backend, env, played, params, *, group_size, max_policy_calls, seed):
        return [SimpleNamespace(stats=EpisodeStats(0.0, 1, j < row["r"])) for row in played for j in range(group_size)]

    monkeypatch.setattr(mmpost.envs, "run_episodes", run_episodes)


def test_sampled_success_plays_only_the_indexed_rows(monkeypatch):
    from learning_world_env import sampled_success

    fake_heldout(monkeypatch, [{"r": r} for r in range(6)])  # per-row success 0, .25, .5, .75, 1, 1 at k = 4
    everything = sampled_success("m", 6, 4, 1.0)
    assert everything["sampled_accuracy"] == pytest.approx(3.5 / 6) and everything["pass_at_k"] == pytest.approx(5 / 6)
    subset = sampled_success("m", 6, 4, 1.0, indices=[0, 3])  # 0 and 0.75
    assert subset["sampled_accuracy"] == pytest.approx(0.375) and subset["pass_at_k"] == pytest.approx(0.5)


def test_main_reports_sampled_success_on_the_fresh_configurations_and_the_paired_gains(monkeypatch, tmp_path):
    import json

    import world_env_wider_heldout as wider

    # 8 held-out rows, configurations a b a c | d b e c: rows 4-7 hold the fresh d (row 4) and e (row 6)
    configs = "abacdbec"
    rows = [{"position": [ord(c)], "target": [0], "r": r} for r, c in enumerate(configs)]
    monkeypatch.setattr(wider, "BENCHMARK_STARTS", 2)
    monkeypatch.setattr(wider, "heldout_rows", lambda heldout: rows[:heldout])
    greedy = {"warm": [0.0] * 8, "seed0": [1.0] * 8, "seed1": [0.0] * 4 + [1.0, 0.0, 0.0, 0.0]}
    monkeypatch.setattr(wider, "greedy_successes", lambda model, heldout: greedy[Path(model).parts[-4] if "seed" in str(model) else "warm"])
    played = {}

    def sampled_success(model_dir, heldout, k, temperature, seed=0, indices=None):
        played[model_dir] = indices
        rate = {"warm": 0.25}.get(model_dir, 0.5 if "seed0" in model_dir else 0.125)
        return {"sampled_accuracy": rate, "pass_at_k": 2 * rate}

    import learning_world_env

    monkeypatch.setattr(learning_world_env, "sampled_success", sampled_success)
    for seed in ("seed0", "seed1"):
        (tmp_path / "runs" / seed).mkdir(parents=True)
        (tmp_path / "runs" / seed / "summary.json").write_text(json.dumps(
            {"steps": 3, "heldout_accuracy_after": statistics.fmean(greedy[seed][:2])}))
    other = tmp_path / "other.json"
    fresh_part = "their 2 configurations not in starts 0-3, each once"
    other.write_text(json.dumps({"gains": {fresh_part: {"per_seed": [0.5, 0.5]}}}))
    assert wider.main(["--runs", str(tmp_path / "runs"), "--warm-start", "warm", "--heldout", "8", "--fresh-from", "4",
                       "--sampled-k", "4", "--paired-with", str(other), "--name", "t", "--results", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "t.json").read_text())
    # fresh rows 4 and 6: seed0 1 / 1, seed1 1 / 0 against 0 / 0 before: gains 1.0 and 0.5; minus 0.5: 0.5 and 0.0
    assert record["parts"][fresh_part] == [4, 6] and record["gains"][fresh_part]["per_seed"] == [1.0, 0.5]
    assert record["paired_with"]["differences"][fresh_part]["per_seed"] == [0.5, 0.0]
    # the sampled measure plays exactly the fresh configurations, for the warm start and both seeds
    assert sorted(played.values()) == [[4, 6]] * 3 and record["sampled_fresh"]["indices"] == [4, 6]
    assert record["sampled_fresh"]["seed0"]["sampled_accuracy"] == 0.5 and record["sampled_fresh"]["before"]["pass_at_k"] == 0.5
    text = (tmp_path / "t.md").read_text()
    assert "| sampled success | 0.250 | +0.250 / -0.125 |" in text
