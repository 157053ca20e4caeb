"""The Adversarial KL controller (GuirlVG reconstruction): hand-computed β sequences, bounds, resume."""
import json
import math

import pytest

import mmpost.algos.kl_adversarial  # noqa: F401  (registers "adversarial" until the registry lists the module)
from mmpost.algos.kl_adversarial import AdversarialKL, adversarial_coef, ema, reward_rise
from mmpost.registry import KL_CONTROLLERS


def test_pure_pieces_by_hand():
    assert reward_rise(0.5, 0.2, 0.1) == pytest.approx(0.3 / 0.3)
    assert reward_rise(0.1, 0.2, 0.1) == 0.0  # a falling reward never raises β
    assert reward_rise(-0.5, -1.0, 0.1) == pytest.approx(0.5 / 1.1)  # relative to |b|
    assert adversarial_coef(0.1, 1.0, 2.0, 5.0) == pytest.approx(0.3)
    assert adversarial_coef(0.1, 100.0, 2.0, 5.0) == pytest.approx(0.5)  # capped at max_factor
    assert ema(0.2, 0.5, 0.5) == pytest.approx(0.35)


def test_coefficient_sequence_worked_by_hand():
    controller = KL_CONTROLLERS.get("adversarial")(0.1, gain=2.0, decay=0.5, eps=0.1, max_factor=5.0)
    expected = [
        (0.2, 0.1, 0.2),      # first step: b := r̄ = 0.2, rise 0
        (0.5, 0.3, 0.35),     # rise (0.5-0.2)/(0.2+0.1) = 1 -> β = 0.1·(1+2·1); b = 0.5·0.2 + 0.5·0.5
        (0.3, 0.1, 0.325),    # below the baseline: β back to β_0 at once
        (3.0, 0.5, 1.6625),   # rise (3-0.325)/0.425 = 6.29 -> 1 + 12.6 capped at 5
    ]
    for reward, coef, baseline in expected:
        metrics = {"reward/mean": reward}
        logged = controller.update(metrics)
        assert controller.coef == pytest.approx(coef)
        assert controller.baseline == pytest.approx(baseline)
        assert logged["loss/kl_adv_baseline"] == pytest.approx(baseline)
        assert logged["loss/kl_adv_rise"] == pytest.approx(controller.rise)
        assert metrics == {"reward/mean": reward}  # the controller returns its metrics; it does not write into its input


def test_missing_or_nan_reward_changes_nothing():
    controller = AdversarialKL(0.1)
    controller.update({"reward/mean": 1.0})
    controller.update({"reward/mean": 2.0})
    before = controller.state_dict()
    controller.update({"reward/mean": float("nan")})
    controller.update({})
    assert controller.state_dict() == before


def test_custom_reward_key():
    controller = AdversarialKL(0.2, reward_key="reward/accuracy", gain=1.0, eps=1.0)
    controller.update({"reward/accuracy": 0.0, "reward/mean": 100.0})
    controller.update({"reward/accuracy": 1.0})
    assert controller.coef == pytest.approx(0.2 * (1 + 1.0 / 1.0))


def test_state_dict_is_json_and_resume_is_exact():
    rewards = [0.1, 0.4, 0.2, 0.9, 0.95, 0.3]
    straight = AdversarialKL(0.05, gain=3.0)
    coefs = []
    for r in rewards:
        straight.update({"reward/mean": r})
        coefs.append(straight.coef)
    first = AdversarialKL(0.05, gain=3.0)
    for r in rewards[:3]:
        first.update({"reward/mean": r})
    state = json.loads(json.dumps(first.state_dict()))
    resumed = AdversarialKL(0.05, gain=3.0)
    resumed.load_state_dict(state)
    for r, coef in zip(rewards[3:], coefs[3:]):
        resumed.update({"reward/mean": r})
        assert resumed.coef == coef


@pytest.mark.parametrize("kwargs", [dict(initial_coef=0.0), dict(initial_coef=0.1, decay=1.0), dict(initial_coef=0.1, eps=0.0),
                                    dict(initial_coef=0.1, max_factor=0.5), dict(initial_coef=0.1, gain=-1.0)])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        AdversarialKL(**kwargs)


def test_generic_grpo_recipe_keeps_the_fixed_controller():
    from conftest import REPO
    from mmpost.config import load_config

    assert load_config(REPO / "recipes" / "grpo.yaml").algorithm.kl_controller == "fixed"
    assert load_config(REPO / "recipes" / "guirlvg.yaml").algorithm.kl_controller == "adversarial"
    assert math.isclose(load_config(REPO / "recipes" / "guirlvg.yaml").algorithm.kl_coef, 0.04)
