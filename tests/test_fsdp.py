"""FSDP2 through accelerate on CPU (gloo): the same training as one process, sharded checkpoints that resume
exactly, CPU offload; and the strategy / accelerate-config validation of `make_accelerator`.

The multi-process tests run `fsdp_worker.py` (three AdamW steps of the real `update_mini_batch` on one fixed
rollout batch of 16 rows) under torchrun with 2 processes x 8 rows, against 1 process x 16 rows in-process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import fsdp_worker  # noqa: E402
from conftest import free_port  # noqa: E402

from mmpost.config import ConfigError, load_config  # noqa: E402
from mmpost.distributed import (STRATEGIES, accelerator_kwargs, launcher_strategy, load_sharded_state,  # noqa: E402
                                resolve_strategy, save_sharded_state)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "recipes" / "accelerate"
STEPS = 3
# Measured (2026-11-29, this CPU): the summed 2 x 8 loss differs from the 1 x 16 loss by at most 1.2e-7, the
# gradient norms by a relative 1e-7. The weights after three AdamW steps differ by at most 3.2e-5 (DDP: 3.0e-5):
# Adam divides by sqrt(v), so last-bit differences in the summation order of near-zero gradients grow to
# ~lr * 1e-2; a wrong gradient (a missing or doubled process average, a lost micro-batch) moves them by ~lr.
LOSS_TOLERANCE = 1e-6
GRAD_NORM_RELATIVE = 1e-5
WEIGHT_TOLERANCE = 1e-4


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def read(folder: Path, name: str) -> dict:
    return {int(k): v for k, v in json.loads((folder / name).read_text()).items()}


def torchrun(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(Path(__file__).parent / "fsdp_worker.py"), *args],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def single(tiny_vl_dir, tmp_path_factory) -> Path:
    """1 process x 16 rows (micro-batches of 4), no launcher: the reference trajectory."""
    out = tmp_path_factory.mktemp("single")
    fsdp_worker.run(str(tiny_vl_dir), str(out), "auto", STEPS)
    return out


@pytest.fixture(scope="module")
def sharded(tiny_vl_dir, tmp_path_factory) -> Path:
    """FSDP2, 2 processes x 8 rows, sharded checkpoint after step 2, then step 3, then uneven generation."""
    out = tmp_path_factory.mktemp("fsdp2")
    torchrun(str(tiny_vl_dir), str(out), "fsdp2", str(STEPS), "--save-after", "2", "--generate", "--export")
    return out


# -- multi-process ---------------------------------------------------------------------------------
@pytest.mark.multiprocess
def test_fsdp2_two_processes_train_like_one(single, sharded):
    info = json.loads((sharded / "info.json").read_text())
    assert info["distributed_type"] == "DistributedType.FSDP"
    # Really sharded: each rank holds half of the 190,944 parameter elements, not all of them.
    assert info["elements_per_rank"] == [95472, 95472]
    one, two = read(single, "losses.json"), read(sharded, "losses.json")
    assert sorted(two) == [1, 2, 3]
    assert max(abs(one[s] - two[s]) for s in one) < LOSS_TOLERANCE
    assert abs(one[2] - one[3]) > 1e-2  # the loss follows the weights (old log-probs are the initial ones)
    norms_one, norms_two = read(single, "grad_norms.json"), read(sharded, "grad_norms.json")
    assert all(abs(norms_one[s] - norms_two[s]) <= GRAD_NORM_RELATIVE * norms_one[s] for s in norms_one)
    final_one, final_two = load_file(str(single / "final.safetensors")), load_file(str(sharded / "final.safetensors"))
    assert max_difference(final_one, final_two) < WEIGHT_TOLERANCE
    assert max_difference(final_two, load_file(str(sharded / "saved_model.safetensors"))) > 1e-3  # step 3 moved the weights


@pytest.mark.multiprocess
def test_fsdp2_generation_keeps_ranks_in_step(sharded):
    """Rank 0 asks for 3 new tokens, rank 1 for 7: without `synced_gpus` rank 0 would leave while rank 1 still
    gathers weights in its forwards, and the run would hang until the launcher's timeout."""
    rows = json.loads((sharded / "generated.json").read_text())  # per rank: lengths..., synced, same as unsharded
    assert [row[-2:] for row in rows] == [[1, 1], [1, 1]]  # synced, and token-for-token the unsharded result
    assert all(1 <= n <= 3 for n in rows[0][:-2]) and all(1 <= n <= 7 for n in rows[1][:-2])
    assert len(rows[0]) == len(rows[1]) == 4  # two prompts each


@pytest.mark.multiprocess
def test_fsdp2_consolidated_export_loads_with_from_pretrained(sharded):
    from transformers import AutoModelForImageTextToText

    export = sharded / "export"
    assert list(export.glob("*.safetensors")) and not list(export.glob("*.bin")) and not list(export.glob("*.pt"))
    model = AutoModelForImageTextToText.from_pretrained(str(export), dtype=torch.float32)
    final = load_file(str(sharded / "final.safetensors"))
    assert max_difference(final, {k: v for k, v in model.state_dict().items() if k in final}) == 0.0
    assert final.keys() <= model.state_dict().keys()


@pytest.fixture(scope="module")
def resumed(tiny_vl_dir, sharded, tmp_path_factory) -> Path:
    """New processes load the step-2 shards into an FSDP2 model with CPU offload on, and take step 3.

    One launch serves two checks (each torchrun start costs ~15-45 s on this shared machine): the checkpoint
    was written without offload, and offloading only moves shards to host memory, which on a CPU-only machine
    changes no number, so resuming under offload must still be exact."""
    out = tmp_path_factory.mktemp("resumed")
    torchrun(str(tiny_vl_dir), str(out), "fsdp2", str(STEPS), "--offload", "--resume", str(sharded / "sharded"))
    return out


@pytest.mark.multiprocess
def test_fsdp2_sharded_checkpoint_resumes_exactly(sharded, resumed):
    folder = sharded / "sharded"
    meta = json.loads((folder / "shards_rank1.json").read_text())
    assert meta["world_size"] == 2 and meta["rank"] == 1
    assert {"model_rank0.safetensors", "model_rank1.safetensors", "optimizer_rank0.safetensors",
            "optimizer_rank1.safetensors", "shards_rank0.json"} <= {p.name for p in folder.iterdir()}
    record = meta["model"]["model.language_model.layers.0.mlp.up_proj.weight"]
    assert record["placements"] == ["Shard(dim=0)"]
    assert record["local_shape"][0] * 2 == record["global_shape"][0]

    saved_model = load_file(str(sharded / "saved_model.safetensors"))
    assert max_difference(saved_model, load_file(str(resumed / "loaded_model.safetensors"))) == 0.0
    saved_optimizer = load_file(str(sharded / "saved_optimizer.safetensors"))
    assert max_difference(saved_optimizer, load_file(str(resumed / "loaded_optimizer.safetensors"))) == 0.0
    assert any(k.endswith("exp_avg_sq") for k in saved_optimizer)
    assert read(resumed, "losses.json") == {3: read(sharded, "losses.json")[3]}
    assert max_difference(load_file(str(sharded / "final.safetensors")), load_file(str(resumed / "final.safetensors"))) == 0.0


@pytest.mark.multiprocess
def test_fsdp2_cpu_offload_constructs_and_steps(resumed):
    info = json.loads((resumed / "info.json").read_text())
    assert (info["distributed_type"], info["cpu_offload"]) == ("DistributedType.FSDP", "CPUOffloadPolicy")
    assert info["elements_per_rank"] == [95472, 95472]
    assert sorted(read(resumed, "grad_norms.json")) == [3]  # it took its step (the numbers are checked above)


@pytest.mark.multiprocess
@pytest.mark.skipif(not os.environ.get("MMPOST_DEEPSPEED_TESTS"), reason="DeepSpeed start-up takes ~40 s per launch "
                    "here; set MMPOST_DEEPSPEED_TESTS=1 (needs `pip install deepspeed`)")
@pytest.mark.parametrize("strategy", ["deepspeed_zero2", "deepspeed_zero3"])
def test_deepspeed_two_processes_train_like_one(tiny_vl_dir, single, tmp_path, strategy):
    pytest.importorskip("deepspeed")
    out = tmp_path / strategy
    # Two micro-batches of 4 rows per rank: the engine may only step after the second (see fsdp_worker.py).
    torchrun(str(tiny_vl_dir), str(out), strategy, str(STEPS))
    assert json.loads((out / "info.json").read_text())["distributed_type"] == "DistributedType.DEEPSPEED"
    one, two = read(single, "losses.json"), read(out, "losses.json")
    assert max(abs(one[s] - two[s]) for s in one) < LOSS_TOLERANCE
    norms_one, norms_two = read(single, "grad_norms.json"), read(out, "grad_norms.json")
    assert all(abs(norms_one[s] - norms_two[s]) <= GRAD_NORM_RELATIVE * norms_one[s] for s in norms_one)
    # Measured 3.4e-5 (ZeRO-2); stepping the engine after each micro-batch instead gives 2.6e-2.
    assert max_difference(load_file(str(single / "final.safetensors")), load_file(str(out / "final.safetensors"))) < WEIGHT_TOLERANCE


# -- one process: state files and strategy validation ---------------------------------------------
def test_unsharded_state_round_trip_and_world_size_check(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    save_sharded_state(tmp_path, model, optimizer)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    expected_moment = optimizer.state[model[0].weight]["exp_avg"].clone()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    load_sharded_state(tmp_path, model, fresh)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    assert torch.equal(fresh.state[model[0].weight]["exp_avg"], expected_moment)
    assert fresh.state[model[0].weight]["step"].item() == 1.0

    meta = json.loads((tmp_path / "shards_rank0.json").read_text())
    (tmp_path / "shards_rank0.json").write_text(json.dumps({**meta, "world_size": 2}))
    with pytest.raises(ValueError, match=r"shards_rank0\.json: written by 2 processes, resumed with 1"):
        load_sharded_state(tmp_path, model, fresh)


def test_load_rejects_a_different_model(tmp_path):
    save_sharded_state(tmp_path, torch.nn.Linear(3, 4), None)
    with pytest.raises(ValueError, match=r"model_rank0\.safetensors: weight has global_shape \[4, 3\] in the checkpoint but \[4, 5\]"):
        load_sharded_state(tmp_path, torch.nn.Linear(5, 4), None)


def test_unknown_strategy_names_the_allowed_ones():
    config = load_config(None, ["distributed.strategy=fsdp"])
    with pytest.raises(ConfigError, match=r"'fsdp' is not one of auto \| ddp \| fsdp2 \| deepspeed_zero2 \| deepspeed_zero3"):
        resolve_strategy(config.distributed)


def test_accelerate_config_that_disagrees_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("distributed_type: FSDP\nfsdp_config:\n  fsdp_version: 2\n")
    config = load_config(None, ["distributed.strategy=deepspeed_zero3", f"distributed.accelerate_config={path}"])
    with pytest.raises(ConfigError, match=rf"{path}: this accelerate config describes strategy 'fsdp2'.*strategy='deepspeed_zero3'"):
        resolve_strategy(config.distributed)


@pytest.mark.parametrize("text,message", [
    ("distributed_type: FSDP\nfsdp_config:\n  fsdp_version: 1\n", "only FSDP2 is supported"),
    ("distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 1\n", "supported stages are 2 and 3"),
    ("distributed_type: FSDP\nfsdp_config:\n  fsdp_version: 2\n  fsdp_sharding_strategy: HYBRID_SHARD\n",
     r"fsdp_config keys \['fsdp_sharding_strategy'\] are not supported"),
    ("distributed_type: TPU\n", "distributed_type 'TPU' is not supported"),
    ("- a list\n", "must be a mapping"),
])
def test_bad_accelerate_configs_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    config = load_config(None, [f"distributed.accelerate_config={path}"])
    with pytest.raises(ConfigError, match=rf"{path}: .*{message}"):
        resolve_strategy(config.distributed)


@pytest.mark.parametrize("name,strategy,offload", [
    ("ddp", "ddp", False), ("fsdp2", "fsdp2", False), ("fsdp2_offload", "fsdp2", True),
    ("deepspeed_zero2", "deepspeed_zero2", False), ("deepspeed_zero3", "deepspeed_zero3", False),
])
def test_shipped_accelerate_configs_resolve(name, strategy, offload):
    path = SHIPPED / f"{name}.yaml"
    assert path.read_text().startswith("# ") and "accelerate launch --config_file" in path.read_text()
    settings = resolve_strategy(load_config(None, [f"distributed.accelerate_config={path}"]).distributed)
    assert (settings.strategy, settings.cpu_offload) == (strategy, offload)
    # The file and the same strategy named explicitly agree.
    assert resolve_strategy(load_config(None, [f"distributed.strategy={strategy}",
                                               f"distributed.accelerate_config={path}"]).distributed).strategy == strategy


def test_fsdp2_plugin_is_full_shard_by_decoder_layer_with_offload():
    from torch.distributed.fsdp import CPUOffloadPolicy
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    config = load_config(None, [f"distributed.accelerate_config={SHIPPED / 'fsdp2_offload.yaml'}"])
    plugin = accelerator_kwargs(config)["fsdp_plugin"]
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.auto_wrap_policy.func is transformer_auto_wrap_policy if hasattr(plugin.auto_wrap_policy, "func") \
        else plugin.auto_wrap_policy is transformer_auto_wrap_policy
    assert isinstance(plugin.cpu_offload, CPUOffloadPolicy)
    assert plugin.cpu_offload.pin_memory is torch.cuda.is_available()  # pinning needs a CUDA driver
    plain = accelerator_kwargs(load_config(None, ["distributed.strategy=fsdp2"]))["fsdp_plugin"]
    assert not isinstance(plain.cpu_offload, CPUOffloadPolicy)


def test_deepspeed_plugin_takes_stage_offload_micro_batch_and_clipping():
    pytest.importorskip("deepspeed")
    config = load_config(None, ["distributed.strategy=deepspeed_zero3", "distributed.cpu_offload=true",
                                "algorithm.micro_batch_size=3", "optim.max_grad_norm=0.5"])
    kwargs = accelerator_kwargs(config)
    assert kwargs["cpu"] is False  # accelerate refuses DeepSpeed with cpu=True
    if not torch.cuda.is_available():
        assert kwargs["kwargs_handlers"][0].backend == "gloo"
    ds = kwargs["deepspeed_plugin"].deepspeed_config
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["gradient_clipping"]) == (3, 1, 0.5)
    zero2 = accelerator_kwargs(load_config(None, ["distributed.strategy=deepspeed_zero2"]))["deepspeed_plugin"].deepspeed_config
    assert zero2["zero_optimization"]["stage"] == 2
    assert zero2["zero_optimization"]["offload_optimizer"]["device"] == "none"


def test_cpu_offload_without_a_sharding_strategy_is_an_error():
    with pytest.raises(ConfigError, match="cpu_offload=true needs strategy fsdp2 or deepspeed_zero2/3, not 'ddp'"):
        accelerator_kwargs(load_config(None, ["distributed.strategy=ddp", "distributed.cpu_offload=true"]))


def test_accelerate_launch_environment_must_agree(monkeypatch):
    assert launcher_strategy({}) is None
    assert launcher_strategy({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_OFFLOAD_PARAMS": "true"}) == ("fsdp2", True)
    assert launcher_strategy({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}) == ("deepspeed_zero3", False)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    with pytest.raises(ConfigError, match=r"accelerate launch.*'fsdp2'.*distributed.strategy='ddp'"):
        resolve_strategy(load_config(None, ["distributed.strategy=ddp"]).distributed)
    assert resolve_strategy(load_config(None, []).distributed).strategy == "fsdp2"  # auto follows the launcher


def test_strategy_list_matches_the_config_docstring():
    from dataclasses import fields

    from mmpost.config import DistributedConfig

    doc = next(f for f in fields(DistributedConfig) if f.name == "strategy").metadata["doc"]
    assert all(name in doc for name in STRATEGIES), doc
