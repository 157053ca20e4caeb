"""Policy-rollout benchmark: episodes, seeded initial states, step limits, Wilson intervals."""
from __future__ import annotations

import math

import pytest

from mmpost.eval.rollout_benchmark import evaluate_policy, run_episode, wilson_interval


class CorridorEnv:
    """A 1-D corridor: the agent starts at reset seed % 3 (or at `options["initial_state"]`) and succeeds
    on reaching cell `goal`; action +1 moves right, anything else stays. A "trap" action ends the
    episode (terminated, unsuccessful)."""

    def __init__(self, goal: int = 4, report_success: bool = True):
        self.goal = goal
        self.report_success = report_success
        self.position = 0
        self.resets: list[int] = []

    def reset(self, *, seed=None, options=None):
        self.resets.append(seed)
        self.position = options["initial_state"] if options else seed % 3
        return self.position, {}

    def step(self, action):
        if action == "trap":
            return self.position, 0.0, True, False, {"success": False}
        if action == "boom":
            raise RuntimeError("simulator crashed")
        if action == 1:
            self.position += 1
        done = self.position >= self.goal
        info = {"success": done} if self.report_success else {}
        return self.position, float(done), done, False, info


def walk_right(observation):
    return 1


def test_wilson_interval_hand_computed():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96 sqrt(0.016 + 0.0009604) / 1.38416
    low, high = wilson_interval(8, 10, z=1.96)
    centre, half = (0.8 + 1.96**2 / 20) / (1 + 1.96**2 / 10), 1.96 * math.sqrt(0.016 + 1.96**2 / 400) / (1 + 1.96**2 / 10)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(6, 5)


def test_step_limit_decides_success_with_seeded_starts():
    # starts are seed % 3 for seeds 7..12: 1, 2, 0, 1, 2, 0 -> 3, 2, 4, 3, 2, 4 steps to the goal
    env = CorridorEnv()
    result = evaluate_policy(lambda task: env, walk_right, episodes_per_task=6, max_steps=3, seed=7)
    assert env.resets == [7, 8, 9, 10, 11, 12]
    assert result["successes"] == 4 and result["success_rate"] == pytest.approx(4 / 6)
    assert result["ci95"] == pytest.approx(list(wilson_interval(4, 6)))
    assert [e["steps"] for e in result["episode_results"]] == [3, 2, 3, 3, 2, 3]
    # settle steps (no-op 0) are not charged to the policy's step budget
    settled = evaluate_policy(lambda task: CorridorEnv(), walk_right, episodes_per_task=6, max_steps=4,
                              seed=7, settle_steps=10, settle_action=0)
    assert settled["success_rate"] == 1.0


def test_per_task_limits_initial_states_policies_and_failures():
    class Alternating:
        """Succeeds on even episodes, springs the trap on odd ones; reset() marks a new episode."""

        def __init__(self):
            self.episode = -1

        def reset(self):
            self.episode += 1

        def __call__(self, observation):
            return 1 if self.episode % 2 == 0 else "trap"

    policies = {"easy": walk_right, "half": Alternating(), "crash": lambda obs: "boom"}
    result = evaluate_policy(lambda task: CorridorEnv(report_success=False), lambda task: policies[task],
                             tasks=["easy", "half", "crash"], episodes_per_task=4, policy_per_task=True,
                             max_steps={"easy": 10, "half": 10, "crash": 10},
                             initial_states={"easy": [0, 1, 2, 3], "half": [3, 3, 3, 3], "crash": [0, 0, 0, 0]})
    assert result["per_task"]["easy"]["success_rate"] == 1.0
    assert result["per_task"]["half"]["successes"] == 2
    assert result["per_task"]["crash"]["successes"] == 0 and result["per_task"]["crash"]["errors"] == 4
    assert result["successes"] == 6 and result["episodes"] == 12
    crashed = result["episode_results"][-1]
    assert crashed["success"] is False and "simulator crashed" in crashed["error"]
    # without info["success"], termination is success; "trap" terminates but reports failure
    assert run_episode(CorridorEnv(report_success=False), walk_right, task="t", episode=0, seed=0, max_steps=5).success
    with pytest.raises(ValueError, match="initial states"):
        evaluate_policy(lambda task: CorridorEnv(), walk_right, episodes_per_task=3, max_steps=5,
                        initial_states={"default": [0]})
