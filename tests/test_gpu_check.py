"""benchmarks/gpu_check.py: the dry run (every phase's config validated, model sizes) and its summary arithmetic.

The GPU run itself needs a GPU machine (docs/vllm.md, "GPU check"); its CPU fallback runs in .venv-vllm
(tests/test_vllm_multimodal.py::test_gpu_check_cpu_fallback_runs_the_vllm_phase).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_validates_every_phase_and_sizes_the_models(tmp_path):
    gpu_check = load_gpu_check()
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["mode"] == "dry-run"
    assert {"torch", "transformers", "vllm", "cuda_available"} <= set(result["env"])
    assert 80e6 < result["models"]["medium"]["parameters"] < 120e6  # "a ~100M-parameter Qwen2.5-VL"
    assert 1e5 < result["models"]["tiny"]["parameters"] < 1e6
    plan = {p["phase"]: p for p in result["plan"]}
    assert list(plan) == ["grpo_hf", "grpo_vllm", "grpo_vllm_tiny", "resume"]
    assert all("distributed: fsdp2" in p["checks"] for p in plan.values())
    assert plan["grpo_vllm"]["model"] == "medium"
    assert any(c.startswith("rollout_backend: vllm") for c in plan["grpo_vllm"]["checks"])
    assert plan["grpo_vllm"]["backend_args"]["enable_sleep_mode"] is True  # sleep between rollout and update
    assert plan["grpo_hf"]["backend_args"] == {}
    assert not (tmp_path / "models").exists()  # a dry run writes no weights


def test_cpu_dry_run_plans_the_tiny_model_without_sleep_mode(tmp_path):
    gpu_check = load_gpu_check()
    assert gpu_check.main(["--dry-run", "--cpu", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    plan = {p["phase"]: p for p in result["plan"]}
    assert list(plan) == ["grpo_hf", "grpo_vllm", "resume"]  # on CPU grpo_vllm already is the tiny model
    assert {p["model"] for p in plan.values()} == {"tiny"} and "medium" not in result["models"]
    assert plan["grpo_vllm"]["backend_args"]["enable_sleep_mode"] is False  # vLLM has no sleep mode on CPU
    assert result["settings"]["steps"] == 3 and result["settings"]["gpu_memory_utilization"] == 0.05


def test_unknown_phase_is_refused():
    gpu_check = load_gpu_check()
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--phases", "grpo_hf,warp_drive"])


def step(rollout_s, tokens, update_s, flops, **extra):
    return {"rollout/gen_tokens": tokens, "perf/rollout_s": rollout_s, "perf/update_s": update_s, "flops/update": flops,
            "perf/sync_s": 0.5, "perf/step_s": 2.0, **extra}


def test_summary_takes_medians_after_the_warm_up_step_and_judges_the_targets():
    gpu_check = load_gpu_check()
    sync = {"vllm/sync/bytes": 2e8, "vllm/sync/reload_s": 0.1, "vllm/sync/gather_s": 0.01, "vllm/sync/wake_s": 0.2,
            "vllm/generate/generate_s": 1.0}
    steps = [step(100.0, 1000, 9.0, 1e12, **sync),  # warm-up: ignored
             step(1.0, 1000, 1.0, 1e12, **sync), step(2.0, 1000, 2.0, 1e12, **sync), step(1.25, 1000, 1.0, 1e12, **sync)]
    phase = {"steps": steps, "standalone": {"tokens_per_s": 900.0},
             "copies_in_profiled_step": {"measured": True, "outside_engine_and_sync": 3}}
    summary = gpu_check.summarise_grpo(phase, peak=1e13)
    # rollout tokens/s per step: 1000, 500, 800 -> median 800; update FLOP/s: 1e12, 5e11, 1e12 -> 1e12, MFU 0.1.
    assert summary["rollout_tokens_per_s"] == 800.0
    assert summary["update_flops_per_s"] == 1e12 and summary["update_mfu"] == pytest.approx(0.1)
    assert summary["rollout_over_standalone"] == pytest.approx(800 / 900)
    assert summary["sync_reload_bytes_per_s"] == pytest.approx(2e9)
    targets = gpu_check.evaluate_targets({"phases": {"grpo_vllm": {"summary": summary}}})
    assert targets["rollout_at_least_90pct_of_standalone"]["met"] is False  # 0.889 < 0.9
    # 3.75e9 parameters x 2 bytes / 2e9 bytes/s = 3.75 s > 1 s.
    assert targets["weight_sync_3b_under_1s"]["extrapolated_reload_s"] == pytest.approx(3.75)
    assert targets["weight_sync_3b_under_1s"]["met"] is False
    assert targets["no_host_device_copies_in_step"]["met"] is False
    unmeasured = gpu_check.evaluate_targets({"phases": {}})
    assert all(t["met"] is None for t in unmeasured.values())
