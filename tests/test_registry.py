"""The one registry mechanism: decorators, lazy built-ins, module paths, loud failures."""
import pytest

from mmpost.registry import ADVANTAGES, REWARDS, Registry, RegistryError


def test_register_get_and_closest_name():
    registry = Registry("widget", required_parameters=["x"])

    @registry.register("double")
    def double(x):
        return 2 * x

    assert registry.get("double")(3) == 6
    with pytest.raises(RegistryError, match="did you mean 'double'"):
        registry.get("doubel")


def test_signature_and_duplicate_checks():
    registry = Registry("widget", required_parameters=["x"])
    with pytest.raises(RegistryError, match="must accept parameter"):
        registry.add("bad", lambda y: y)
    registry.add("good", lambda x: x)
    with pytest.raises(RegistryError, match="already registered"):
        registry.add("good", lambda x: x + 1)


def test_builtins_resolve_lazily_and_module_paths_work():
    assert "grpo" in ADVANTAGES.names()
    fn = REWARDS.get("mmpost.rewards.builtin:answer_tag_format")
    assert fn(["<answer>x</answer>"], [{}]) == [1.0]
    assert REWARDS.get("mmpost.rewards.builtin:answer_tag_format") is fn
    # an import path resolves a plugin; it does not register a new name (`mmpost list` shows registered names)
    assert "mmpost.rewards.builtin:answer_tag_format" not in REWARDS.names()
    with pytest.raises(RegistryError, match="no attribute"):
        REWARDS.get("mmpost.rewards.builtin:nope")
