"""No dead knobs: every declared config key is read by some code path.

Attribute reads on the config dataclasses are recorded while two recipe tiny presets build their run and
train one step (`grpo`, and `hpt` with LoRA and a KL term, which reach the LoRA, reference and KL keys). Only
reads made by the package's own code count (mmpost/, modalities/, tasks/, eval/); reads by config.py's
loading, type-checking and serialisation do not, nor do reads from tests. A key read only on some other path
is listed in ONLY_ON_OTHER_PATHS with the function that reads it, and that function's source must read it.
`algorithm.sft_coef` was such a dead knob (declared, set by recipes, read by nothing) until it was wired.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import sys

import mmpost.config as config_module
from mmpost.config import describe, load_config
from mmpost.trainer import train
from conftest import REPO, tiny_overrides

PACKAGE_ROOTS = tuple(str(REPO / folder) + "/" for folder in ("mmpost", "modalities", "tasks", "eval"))
CONFIG_FILE = str(REPO / "mmpost" / "config.py")
# config.py functions that touch every field without using it (loading, type checks, serialisation).
NOT_A_USE = {"to_dict", "save_config", "describe", "_build", "_coerce", "load_config", "config_from_dict"}
SECTION = {"Config": "", "ModelConfig": "model.", "LoraConfig": "model.lora.", "DataConfig": "data.",
           "RolloutConfig": "rollout.", "AlgorithmConfig": "algorithm.", "OptimConfig": "optim.", "TrainConfig": "train.",
           "EvalConfig": "eval.", "DistributedConfig": "distributed.", "RewardSpec": "rewards[]."}
# key -> the function that reads it on a path the two runs do not take (none today: the runs read every key;
# the builder's validation reads the evaluation keys even when no benchmark is configured).
ONLY_ON_OTHER_PATHS: dict[str, object] = {}


def config_classes() -> list[type]:
    """Config and every section dataclass reachable from it (helpers such as validators are not config)."""
    found, todo = [], [config_module.Config, config_module.RewardSpec]
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found.append(cls)
        instance = cls()
        todo += [type(getattr(instance, f.name)) for f in dataclasses.fields(cls)
                 if dataclasses.is_dataclass(getattr(instance, f.name))]
    missing = [cls.__name__ for cls in found if cls.__name__ not in SECTION]
    assert not missing, f"new config sections {missing}: add them to SECTION"
    return found


@contextlib.contextmanager
def recording_reads():
    """Yields the set of dotted keys read by the package's code while the block runs."""
    seen: set[str] = set()

    def recorder(cls):
        names = {f.name for f in dataclasses.fields(cls)}

        def __getattribute__(self, name):
            if name in names:
                caller = sys._getframe(1).f_code
                if caller.co_filename.startswith(PACKAGE_ROOTS) and not (
                        caller.co_filename == CONFIG_FILE and caller.co_name in NOT_A_USE):
                    seen.add(SECTION[cls.__name__] + name)
            return object.__getattribute__(self, name)
        return __getattribute__

    classes = config_classes()
    for cls in classes:
        cls.__getattribute__ = recorder(cls)
    try:
        yield seen
    finally:
        for cls in classes:
            del cls.__getattribute__


def declared_keys() -> set[str]:
    keys = {key for key, _, _ in describe()}
    keys |= {f"rewards[].{f.name}" for f in dataclasses.fields(config_module.RewardSpec)}
    return keys


def test_every_declared_config_key_is_read(warm_vl_dir, tmp_path):
    with recording_reads() as read:
        train(load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(warm_vl_dir, tmp_path / "grpo", **{
            "train.steps": 1})))
        train(load_config(REPO / "recipes" / "hpt.yaml", tiny_overrides(warm_vl_dir, tmp_path / "hpt", **{
            "train.steps": 1, "eval.heldout": "false", "model.lora.enabled": "true", "algorithm.kl_coef": 0.05})))
    assert "algorithm.sft_coef" in read and "algorithm.norm_constant" in read
    unread = sorted(declared_keys() - read - set(ONLY_ON_OTHER_PATHS))
    assert not unread, f"config keys no code path read: {unread}"
    for key, function in ONLY_ON_OTHER_PATHS.items():
        field = key.rsplit(".", 1)[-1]
        assert re.search(rf"\.{field}\b", inspect.getsource(function)), f"{key}: {function.__name__} does not read it"
        assert key not in read, f"{key} is read by the runs: drop it from ONLY_ON_OTHER_PATHS"
