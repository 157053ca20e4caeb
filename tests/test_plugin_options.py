"""Typed plugin options (issue #15 item 4): each chosen estimator, loss, source, KL controller, rollout backend,
modality and benchmark scorer has an options dataclass (declared, or made from its signature), so `mmpost validate`
rejects a misspelt or mistyped option and `--explain` lists them."""
import dataclasses
import subprocess
import sys

import pytest

from mmpost.builder import check_plugin_options
from mmpost.config import ConfigError, load_config
from mmpost.registry import ADVANTAGES, EXPERIENCE_SOURCES, KL_CONTROLLERS, POLICY_LOSSES, SFT_LOSSES, describe_options


def fields(options) -> dict:
    return {f.name: (f.default, f.type) for f in dataclasses.fields(options)}


def test_options_come_from_signatures_without_engine_inputs():
    assert fields(POLICY_LOSSES.options("ppo_clip")) == {"clip_low": (0.2, float), "clip_high": (None, float | None),
                                                         "dual_clip_c": (None, float | None)}
    assert fields(ADVANTAGES.options("grpo")) == {"eps": (1e-6, float), "scale": ("group", str)}
    assert set(fields(ADVANTAGES.options("reinforce_pp"))) == {"eps", "token_weighted"}  # `lengths` is an input
    assert set(fields(KL_CONTROLLERS.options("adaptive"))) == {"target_kl", "horizon"}  # `initial_coef` is kl_coef
    assert fields(ADVANTAGES.options("dr_grpo")) == {}  # `**kw` adds no option
    assert set(fields(EXPERIENCE_SOURCES.options("chord"))) == {"mu_schedule", "mu_args"}


def test_a_declared_options_class_wins():
    assert set(fields(SFT_LOSSES.options("sa_dft"))) == {"numeric_weight", "stopword_weight", "default_weight"}
    assert ("numeric_weight", "float = 0.3") in describe_options(SFT_LOSSES.options("sa_dft"))


@pytest.mark.parametrize("overrides, message", [
    (["algorithm.policy_loss_args={clip_lwo: 0.3}"], r"clip_lwo'; did you mean 'algorithm.policy_loss_args.clip_low'"),
    (["algorithm.advantage=dr_grpo", "algorithm.advantage_args={eps: 0.1}"], r"advantage 'dr_grpo' takes: no options"),
    (["algorithm.source=hpt", "algorithm.source_args={switch_gate: many}"], r"switch_gate' expects int, got 'many'"),
    (["algorithm.kl_controller=adaptive", "algorithm.kl_controller_args={horizont: 10}"], r"did you mean.*horizon"),
    # The rollout backend, the task's modality and each benchmark's scorer are typed the same way.
    (["rollout.backend_args={batchsize: 4}"], r"did you mean 'rollout.backend_args.batch_size'.*rollout_backend 'hf' takes"),
    (["rollout.backend_args={batch_size: many}"], r"rollout.backend_args.batch_size' expects int, got 'many'"),
    # What the engine passes a backend itself (the policy kind's tokens) is not an option.
    (["rollout.backend_args={pad_token_id: 0}"], r"unknown key 'rollout.backend_args.pad_token_id'"),
    (["data.modality_args={max_pixel: 4096}"], r"did you mean 'data.modality_args.max_pixels'.*modality 'image' takes"),
    (["eval.score_args={screenspot: {coord: pixels}}"], r"did you mean 'eval.score_args.screenspot.coords'.*scorer 'screenspot'"),
])
def test_a_wrong_option_is_an_error_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_plugin_options(load_config(None, overrides))


def test_good_options_pass_and_are_reported():
    checked = check_plugin_options(load_config(None, ["algorithm.advantage_args={eps: 1e-4, scale: batch}"]))
    assert "algorithm.advantage_args: ['eps', 'scale'] checked against advantage 'grpo'" in checked


def test_validate_explain_lists_the_chosen_plugins_options():
    out = subprocess.run([sys.executable, "-m", "mmpost.cli", "validate", "chord", "--explain"], capture_output=True,
                         text=True, check=True).stdout
    assert "algorithm.source_args.mu_schedule" in out and "experience_source 'chord' option: str = 'chord_mu'" in out
    assert "algorithm.policy_loss_args.clip_low" in out
    assert "rollout.backend_args.batch_size" in out and "rollout_backend 'hf' option: int = 16" in out
    assert "data.modality_args.max_pixels" in out and "modality 'image' option" in out


def test_backend_modality_and_scorer_options_pass_and_are_reported():
    checked = check_plugin_options(load_config(None, ["rollout.backend_args={batch_size: 4, shared_prefill: false}",
                                                      "data.modality_args={max_pixels: 4096}",
                                                      "eval.score_args={screenspot: {coords: pixels}}"]))
    assert "rollout.backend_args: ['batch_size', 'shared_prefill'] checked against rollout_backend 'hf'" in checked
    assert "data.modality_args: ['max_pixels'] checked against modality 'image'" in checked
    assert "eval.score_args.screenspot: ['coords'] checked against scorer 'screenspot'" in checked


def test_the_source_read_validate_catches_a_misspelt_option_without_imports():
    from mmpost.registry_index import check_config

    with pytest.raises(ConfigError, match=r"experience_source 'visurf' has no option 'label_formt'; did you mean"):
        check_config(load_config(None, ["algorithm.source=visurf", "algorithm.source_args={label_formt: target}"]))
    with pytest.raises(ConfigError, match=r"rollout_backend 'hf' has no option 'batchsize'; did you mean"):
        check_config(load_config(None, ["rollout.backend_args={batchsize: 4}"]))
    try:  # the option check runs before the model path's
        check_config(load_config(None, ["algorithm.policy_loss_args={clip_low: 0.1}"]))
    except ConfigError as error:
        assert "model.path" in str(error)
