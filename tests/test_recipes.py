"""Every shipped recipe runs its tiny CPU preset end to end and writes the run directory contract."""
import json

import pytest
import yaml

from mmpost.registry import REWARDS

from mmpost.config import load_config
from mmpost.trainer import train
from conftest import REPO, tiny_overrides

ENGINE_RECIPES = ["grpo", "visurf", "chord", "hpt", "sft"]
REQUIRED_METRICS = {"step", "reward/mean", "loss/total", "rollout/gen_tokens", "perf/step_s", "perf/rollout_s", "perf/update_s"}


@pytest.mark.parametrize("name", ENGINE_RECIPES)
def test_recipe_tiny_preset_writes_the_run_directory(warm_vl_dir, tmp_path, name):
    out = tmp_path / name
    summary = train(load_config(REPO / "recipes" / f"{name}.yaml", tiny_overrides(warm_vl_dir, out, **{"train.steps": 2})))
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["algorithm"]["source"] == yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())["algorithm"]["source"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert REQUIRED_METRICS <= set(metrics[0])
    if name != "sft":
        assert "reward/shapes_accuracy" in metrics[0] and "loss/policy" in metrics[0]
    if name in ("sft", "chord", "hpt"):
        assert any("loss/sft" in m for m in metrics) or name == "hpt"
    checkpoint = out / "checkpoints" / "step_2"
    for file in ["model/model.safetensors", "model/config.json", "optimizer.safetensors", "optimizer.json",
                 "trainer_state.json", "rng_rank0.json", "rng_rank0.safetensors", "config.yaml"]:
        assert (checkpoint / file).is_file(), file
    assert (out / "checkpoints" / "latest").read_text() == "step_2"
    assert (out / "curves.png").stat().st_size > 1000
    stored = json.loads((out / "summary.json").read_text())
    assert {"heldout_accuracy_before", "heldout_accuracy_after", "steps", "seconds"} <= set(stored)
    assert stored["steps"] == summary["steps"] == 2


def test_every_recipe_validates_and_starts_with_its_command():
    from mmpost.builder import validate

    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert len(recipes) >= 5
    for path in recipes:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# mmpost train recipes/") and path.name in first, path
        validate(load_config(path))


@REWARDS.register("test_answers_red")
def answers_red(completions, samples, **_):
    return [1.0 if "<answer>red</answer>" in c else 0.0 for c in completions]


@pytest.mark.parametrize("recipe", ["grpo", "visurf"])
def test_rl_moves_the_policy_towards_reward(warm_vl_dir, tmp_path, recipe):
    """A reward for one fixed answer: the sampled success rate must climb within a dozen steps (seeded)."""
    out = tmp_path / recipe
    config = load_config(REPO / "recipes" / f"{recipe}.yaml", tiny_overrides(warm_vl_dir, out, **{
        "train.steps": 12, "data.task_args": "{kinds: [color]}", "eval.heldout": "false",
        "optim.lr": "1e-3"}))  # the step this test was written for, independent of the recipe's default
    config.rewards = [{"name": "test_answers_red"}, {"name": "answer_tag_format", "weight": 0.1}]
    train(config)
    reward = [json.loads(line)["reward/test_answers_red"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(reward[-3:]) / 3 > sum(reward[:3]) / 3 + 0.25, reward


def test_sft_teaches_the_model_to_read_images(tiny_vl_dir, tmp_path):
    """From random weights, colour questions (chance 0.25) are answered from the image after SFT."""
    summary = train(load_config(REPO / "recipes" / "sft.yaml", tiny_overrides(tiny_vl_dir, tmp_path / "sft", **{
        "train.steps": 150, "data.prompts_per_step": 16, "data.task_args": "{kinds: [color], heldout_size: 64}",
        "data.heldout_size": 64, "optim.lr": "1e-3"})))  # the step this test was written for
    assert summary["heldout_accuracy_before"] == 0.0
    assert summary["heldout_accuracy_after"] >= 0.6, summary


def test_training_evaluates_benchmarks_periodically(tiny_vl_dir, tmp_path):
    """`eval.benchmarks` scores an official-format benchmark every N steps, logged as eval/<benchmark>/<metric>."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("official_formats", REPO / "tests" / "fixtures" / "eval" / "official_formats.py")
    formats = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(formats)
    data = formats.screenspot(tmp_path / "screenspot")
    train(load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(tiny_vl_dir, tmp_path / "run", **{
        "train.steps": 2, "eval.every_n_steps": 1, "eval.benchmarks": "[screenspot]",
        "eval.benchmark_data": f"{{screenspot: {data}}}", "eval.heldout": "false", "eval.max_new_tokens": 8})))
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("eval/screenspot/accuracy" in m and 0.0 <= m["eval/screenspot/accuracy"] <= 1.0 for m in metrics), metrics[0].keys()


@pytest.mark.parametrize("overrides,expected,absent", [
    ({"algorithm.kl_coef": 0.1, "algorithm.kl_in_reward": "true"}, ["reward/kl_penalty"], ["loss/kl"]),
    ({"algorithm.kl_coef": 0.1, "algorithm.kl_estimator": "k2"}, ["loss/kl", "loss/kl_coef"], ["reward/kl_penalty"]),
    ({"algorithm.drop_zero_variance_groups": "true", "algorithm.advantage": "rloo"}, ["rollout/zero_variance_fraction"], []),
    ({"algorithm.policy_loss": "gspo", "algorithm.aggregation": "seq_mean_token_mean"}, ["loss/policy"], []),
    ({"algorithm.policy_loss": "gppo", "algorithm.ppo_epochs": 2}, ["loss/policy", "rollout/logprob_mismatch"], []),
    ({"algorithm.kl_coef": 0.1, "algorithm.kl_estimator": "k3_unclamped", "algorithm.kl_importance_weighted": "true",
      "algorithm.mini_batches": 2}, ["loss/kl", "reward/unscorable"], ["reward/kl_penalty"]),
])
def test_algorithm_options_reach_the_loop(warm_vl_dir, tmp_path, overrides, expected, absent):
    out = tmp_path / "run"
    train(load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(warm_vl_dir, out, **{"train.steps": 2, "eval.heldout": "false",
                                                                                            **overrides})))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for key in expected:
        assert all(m.get(key) is not None for m in metrics), key
    for key in absent:
        assert all(key not in m for m in metrics), key
    if "rollout/logprob_mismatch" in expected:  # HF sampling log-probs equal the trainer's re-scored ones
        assert all(m["rollout/logprob_mismatch"] < 1e-4 for m in metrics)


def test_adaptive_kl_controller_follows_the_in_reward_kl(warm_vl_dir, tmp_path):
    """verl's use of the adaptive controller: beta*KL folded into the reward, the controller fed that KL."""
    out = tmp_path / "run"
    train(load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(warm_vl_dir, out, **{
        "train.steps": 3, "eval.heldout": "false", "algorithm.kl_coef": 0.1, "algorithm.kl_in_reward": "true",
        "algorithm.kl_controller": "adaptive", "algorithm.kl_controller_args": "{target_kl: 0.001, horizon: 10}"})))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["reward/kl_coef"] == pytest.approx(0.1)
    assert metrics[2]["reward/kl"] > 0  # the policy has moved away from the reference by step 3
    for before, after in zip(metrics, metrics[1:]):
        error = min(max(before["reward/kl"] / 0.001 - 1.0, -0.2), 0.2)
        assert after["reward/kl_coef"] == pytest.approx(before["reward/kl_coef"] * (1 + error * before["rollout/sequences"] / 10))
    assert metrics[-1]["reward/kl_coef"] != pytest.approx(0.1)


def test_sft_coef_scales_the_source_sft_weight(warm_vl_dir, tmp_path):
    """algorithm.sft_coef multiplies the source's own SFT weight: CHORD-phi's mu = 0.1 gives 0.3 * 0.1."""
    out = tmp_path / "run"
    train(load_config(REPO / "recipes" / "chord_phi.yaml", tiny_overrides(warm_vl_dir, out, **{
        "train.steps": 1, "eval.heldout": "false", "algorithm.sft_coef": 0.3})))
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["loss/sft_coef"] == pytest.approx(0.03) and metrics["loss/rl_coef"] == pytest.approx(0.9)
    assert metrics["loss/total"] == pytest.approx(0.9 * metrics["loss/policy"] + 0.03 * metrics["loss/sft"], rel=1e-5)


@pytest.mark.parametrize("loss", ["dft", "sa_dft", "asft", "chord_phi"])
def test_sft_losses_train_through_the_loop(warm_vl_dir, tmp_path, loss):
    out = tmp_path / loss
    train(load_config(REPO / "recipes" / "sft.yaml", tiny_overrides(warm_vl_dir, out, **{
        "train.steps": 2, "eval.heldout": "false", "algorithm.sft_loss": loss})))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(m["loss/sft"] is not None and m["loss/sft"] > 0 for m in metrics)
