"""Config loading: YAML values, key=value overrides, unknown keys named with the closest valid one."""
import pytest

from mmpost.config import Config, ConfigError, describe, load_config


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_are_typed(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 1e-6\nrollout:\n  num_generations: 4\n")
    config = load_config(path, ["rollout.temperature=0.7", "algorithm.advantage=rloo", "train.resume=auto"])
    assert config.optim.lr == pytest.approx(1e-6)  # YAML 1.1 reads 1e-6 as a string; it is coerced
    assert isinstance(config.optim.lr, float)
    assert config.rollout.num_generations == 4
    assert config.rollout.temperature == 0.7
    assert config.algorithm.advantage == "rloo"
    assert config.train.resume == "auto"


def test_unknown_key_names_file_key_and_closest_name(tmp_path):
    path = write(tmp_path, "rollout:\n  num_generation: 4\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "rollout.num_generation" in message and "rollout.num_generations" in message


def test_unknown_override_and_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="algorithm.kl_coef"):
        load_config(None, ["algorithm.kl_coeff=0.1"])
    with pytest.raises(ConfigError, match="rollout.num_generations"):
        load_config(None, ["rollout.num_generations=many"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, ["rollout"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))


def test_every_field_is_documented():
    rows = describe(Config)
    assert len(rows) > 40
    assert [key for key, doc, _ in rows if not doc] == []
