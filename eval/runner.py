"""`mmpost eval --model`: generate answers to benchmark prompts with a model, then score them officially.

Pipeline per benchmark: load the official annotations -> the benchmark's prompt and media ->
the modality adapter encodes them exactly as training does -> greedy decoding with the engine's HF
backend (media and chat-control tokens suppressed, as in `trainer.heldout_accuracy`) -> the
benchmark's official scorer. Writes, into `output`:

- `results.json`: per benchmark the metrics, counts, breakdowns, scorer mode, sample counts, model
  and data fingerprints; the generation settings and package versions (lmms-eval's `results`,
  `config`, `n-samples` and `versions` sections, in spirit).
- `samples_<benchmark>.jsonl`: one line per item: doc_id, id, prompt, raw output, extracted answer,
  target, per-sample score (plus lmms-eval's `resps`/`filtered_resps` names for the same values).
- `cache/<benchmark>.rank<R>.jsonl`: the resumable response cache. Each generated answer is appended
  (and flushed) as soon as its batch finishes, keyed by a hash of the model fingerprint, the prompt,
  the media files and the generation settings; a rerun skips every key already present, in any
  rank's file, so an interrupted run continues and a finished one is free to re-score.

Under `torchrun`, rank r generates items r, r + world, ...; ranks only write their own cache file,
and rank 0 scores the union once every rank is done. Batch size and process count change which
prompts share a forward pass, never which answers are kept (checked in the tests on CPU in
float32; half-precision kernels on GPU may differ in the last bits between batch shapes).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from mmpost.judge import Judge, JudgeUnavailableError
from mmpost.registry import BENCHMARKS, MODALITIES
from mmpost.types import PromptEncoding

import mmpost.eval  # noqa: F401  (registers the built-in benchmarks)
from mmpost.eval.common import Benchmark, BenchmarkDataError
from mmpost.eval.score_cli import package_versions

log = logging.getLogger(__name__)

CACHE_SCHEMA = 1
MEDIA_KINDS = {"images": "image", "videos": "video", "audios": "audio"}
ID_FIELDS = ("id", "pid", "question_id", "sample_index")


# -- model -----------------------------------------------------------------------------------------
def resolve_model_dir(model: str | os.PathLike) -> Path:
    """A model folder; a run directory (one with `checkpoints/latest`) resolves to its latest
    checkpoint's `model/` folder."""
    path = Path(model)
    pointer = path / "checkpoints" / "latest"
    if pointer.is_file():
        folder = path / "checkpoints" / pointer.read_text().strip() / "model"
        if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path}: checkpoints/latest points at {folder}, which holds no saved model")
        return folder
    if (path / "checkpoints").is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: a run directory without checkpoints/latest (no finished checkpoint yet)")
    return path


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the names and bytes of the folder's config, tokenizer and weight files; a hub id
    (not a local folder) is fingerprinted by its name only."""
    if not model_dir.is_dir():
        return hashlib.sha256(f"hub:{model_dir}".encode()).hexdigest()
    digest = hashlib.sha256()
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".model", ".txt", ".jinja"))
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_eval_model(model_dir: Path, *, dtype: str = "auto", device: torch.device | None = None) -> tuple[torch.nn.Module, Any]:
    """The model and processor, loaded as the engine loads them; a LoRA checkpoint is applied to its
    base model (named in adapter_config.json) and merged."""
    from mmpost.config import ModelConfig
    from mmpost.model import load_model, load_processor

    device = device or default_device()
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    adapter_config = model_dir / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{adapter_config}: no base_model_name_or_path to apply the LoRA adapter to")
        model = PeftModel.from_pretrained(load_model(ModelConfig(path=base, dtype=dtype)), str(model_dir)).merge_and_unload()
    else:
        model = load_model(ModelConfig(path=str(model_dir), dtype=dtype))
    model.to(device).eval()
    return model, load_processor(str(model_dir))


# -- items -----------------------------------------------------------------------------------------
@dataclass
class PreparedItem:
    """One benchmark item ready to encode: the scorer's row, its prompt, its media file paths."""

    position: int
    id: str
    item: dict
    prompt: str
    media: dict[str, list[str]]
    cache_key: str = ""


def default_item_id(item: dict, position: int) -> str:
    for name in ID_FIELDS:
        if item.get(name) is not None:
            return str(item[name])
    return str(position)


def _media_identity(media: dict[str, list[str]]) -> list:
    """File names and sizes: enough to notice swapped or re-encoded media without hashing videos."""
    return [[kind, Path(path).name, Path(path).stat().st_size] for kind, paths in sorted(media.items()) for path in paths]


def prepare_items(spec: Benchmark, items: Sequence[dict], data_dir: Path, *, prompt_args: dict | None = None,
                  mode: str = "official") -> list[PreparedItem]:
    """Prompt text, media paths and id per item; ids must be unique within the benchmark.

    `prompt_args` go to `build_prompt` when it accepts them; so does the scorer `mode` (MMAU's
    lmms-eval mode asks for a letter)."""
    media_root = data_dir if data_dir.is_dir() else data_dir.parent
    accepted = inspect.signature(spec.build_prompt).parameters
    unknown = sorted(set(prompt_args or {}) - set(accepted))
    if unknown:
        raise ValueError(f"{spec.name}: build_prompt takes no argument(s) {unknown}")
    prompt_args = dict(prompt_args or {})
    if "mode" in accepted:
        prompt_args.setdefault("mode", mode)
    prepared, seen = [], set()
    for position, item in enumerate(items):
        item_id = (spec.item_id or default_item_id)(item, position)
        if item_id in seen:
            raise BenchmarkDataError(f"{spec.name}: duplicate item id {item_id!r} in {data_dir}")
        seen.add(item_id)
        media = spec.media(item, media_root) if spec.media else {}
        prepared.append(PreparedItem(position, item_id, item, spec.build_prompt(item, **prompt_args), media))
    return prepared


def data_fingerprint(prepared: Sequence[PreparedItem]) -> str:
    """sha256 over the annotation rows (canonical JSON) and the media file names and sizes."""
    digest = hashlib.sha256()
    for entry in prepared:
        digest.update(json.dumps([entry.id, entry.item, _media_identity(entry.media)], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cache_key(model_fp: str, spec: Benchmark, entry: PreparedItem, generation: dict, modality_args: dict) -> str:
    payload = [CACHE_SCHEMA, model_fp, spec.name, spec.system_prompt, entry.prompt, spec.assistant_prefix,
               _media_identity(entry.media), spec.modality, modality_args, generation]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def build_messages(spec: Benchmark, entry: PreparedItem) -> list[dict]:
    """One user turn: a placeholder per media file (images, then videos, then audios), then the text."""
    content: list[dict] = []
    for kind, part in MEDIA_KINDS.items():
        content.extend({"type": part} for _ in entry.media.get(kind, []))
    content.append({"type": "text", "text": entry.prompt})
    messages = [{"role": "system", "content": spec.system_prompt}] if spec.system_prompt else []
    return messages + [{"role": "user", "content": content}]


class TextOnlyEncoder:
    """Encodes a prompt without media (benchmarks whose `modality` is None)."""

    name = "text"

    def encode_prompt(self, processor: Any, messages: list[dict], sample: dict) -> PromptEncoding:
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        encoded = processor(text=[text], return_tensors="pt")
        token_fields = {k: encoded[k][0].to(torch.long) for k in ("mm_token_type_ids",) if k in encoded}
        return PromptEncoding(input_ids=encoded["input_ids"][0].to(torch.long), text=text, token_fields=token_fields)


def modality_adapter(spec: Benchmark, modality_args: dict, overrides: dict[str, Any] | None = None) -> Any:
    """The registered adapter for the benchmark's modality (an instance from `overrides` first)."""
    if spec.modality is None:
        return TextOnlyEncoder()
    if overrides and spec.modality in overrides:
        return overrides[spec.modality]
    if spec.modality not in MODALITIES:
        raise ValueError(f"benchmark {spec.name} needs the '{spec.modality}' modality, which is not registered "
                         f"(registered: {MODALITIES.names()})")
    return MODALITIES.get(spec.modality)(**modality_args)


def with_assistant_prefix(encoding: PromptEncoding, prefix: str, tokenizer: Any) -> PromptEncoding:
    """The prompt followed by `prefix` as the start of the assistant's answer (token fields extended with 0)."""
    if not prefix:
        return encoding
    extra = torch.tensor(tokenizer(prefix, add_special_tokens=False)["input_ids"], dtype=torch.long)
    token_fields = {k: torch.cat([v, torch.zeros_like(extra, dtype=v.dtype)]) for k, v in encoding.token_fields.items()}
    return PromptEncoding(input_ids=torch.cat([encoding.input_ids, extra]), media=encoding.media,
                          text=encoding.text + prefix, token_fields=token_fields)


# -- generation ------------------------------------------------------------------------------------
class GreedyGenerator:
    """The engine's HF backend with the training policy's EOS, pad and suppressed tokens."""

    def __init__(self, model: torch.nn.Module, processor: Any, *, batch_size: int, max_new_tokens: int) -> None:
        from mmpost.policy import TokenPolicy
        from mmpost.rollout.base import SamplingParams
        from mmpost.rollout.hf import HFGenerateBackend

        model = getattr(model, "module", model)  # DDP wraps the model; generation needs the inner one
        # TokenPolicy reads EOS/pad/suppressed ids from the tokenizer alone; task and modality are unused here.
        policy = TokenPolicy(model, processor, task=None, modality=None)
        self.tokenizer = policy.tokenizer
        self.batch_size = batch_size
        self.backend = HFGenerateBackend(model, pad_token_id=policy.pad_token_id, eos_token_ids=policy.eos_token_ids,
                                         suppressed_token_ids=policy.suppressed_token_ids, batch_size=batch_size)
        self.params = SamplingParams(n=1, greedy=True, max_new_tokens=max_new_tokens)
        self.settings = {"greedy": True, "max_new_tokens": max_new_tokens, "num_return_sequences": 1,
                         "suppressed_token_ids": len(policy.suppressed_token_ids), "eos_token_ids": policy.eos_token_ids}

    def generate(self, prompts: Sequence[PromptEncoding]) -> list[str]:
        result = self.backend.generate(prompts, [{} for _ in prompts], self.params)
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in result.completion_ids]


def encode_items(spec: Benchmark, entries: Sequence[PreparedItem], adapter: Any, processor: Any, tokenizer: Any) -> tuple[list[PromptEncoding], list[dict]]:
    """Encodings and, per item, extras worth keeping with the answer (the model's input image sizes)."""
    encodings, extras = [], []
    for entry in entries:
        sample = {"id": entry.id, **entry.media}
        encoding = adapter.encode_prompt(processor, build_messages(spec, entry), sample)
        encodings.append(with_assistant_prefix(encoding, spec.assistant_prefix, tokenizer))
        sizes = (sample.get("decoded") or {}).get("model_image_sizes")
        extras.append({"model_image_sizes": [list(s) for s in sizes]} if sizes else {})
    return encodings, extras


def generate_for(spec: Benchmark, entries: Sequence[PreparedItem], generator: GreedyGenerator, adapter: Any,
                 processor: Any, on_batch=None) -> list[dict]:
    """Records {id, key, output, ...extras} for `entries`, generated `generator.batch_size` at a time."""
    records: list[dict] = []
    for start in range(0, len(entries), generator.batch_size):
        chunk = entries[start : start + generator.batch_size]
        encodings, extras = encode_items(spec, chunk, adapter, processor, generator.tokenizer)
        outputs = generator.generate(encodings)
        batch = [{"id": e.id, "key": e.cache_key, "output": text, **extra} for e, text, extra in zip(chunk, outputs, extras)]
        if on_batch is not None:
            on_batch(batch)
        records.extend(batch)
    return records


# -- cache -----------------------------------------------------------------------------------------
class ResponseCache:
    """Append-only JSONL per rank; lookups see every rank's file. A torn last line is ignored."""

    def __init__(self, folder: Path, benchmark: str, rank: int) -> None:
        self.folder = folder
        self.benchmark = benchmark
        self.path = folder / f"{benchmark}.rank{rank}.jsonl"
        self.records: dict[str, dict] = {}
        self.reload()

    def reload(self) -> None:
        self.records = {}
        for path in sorted(self.folder.glob(f"{self.benchmark}.rank*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # interrupted mid-write
                if isinstance(record, dict) and "key" in record and isinstance(record.get("output"), str):
                    self.records[record["key"]] = record

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, records: Iterable[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torn = self.path.is_file() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        with open(self.path, "a", encoding="utf-8") as handle:
            if torn:
                handle.write("\n")  # end a line cut by a crash, so it does not swallow the next record
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.records[record["key"]] = record
            handle.flush()
            os.fsync(handle.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


# -- scoring ---------------------------------------------------------------------------------------
def score_outputs(spec: Benchmark, prepared: Sequence[PreparedItem], records: Sequence[dict], *, mode: str,
                  judge: Judge | None = None, score_args: dict | None = None) -> tuple[dict, list[dict]]:
    """Run the benchmark's scorer on the generated texts; returns (result without samples, sample lines).

    A scorer that needs a judge it was not given raises JudgeUnavailableError, which the caller records.
    """
    rows = []
    for entry, record in zip(prepared, records):
        row = dict(entry.item)
        row[spec.response_key] = spec.response_prefix + record["output"]
        sizes = record.get("model_image_sizes")
        if sizes and len(sizes) == 1:
            row.setdefault("input_size", tuple(sizes[0]))  # for grounding answers in resized-input pixels
        rows.append(row)
    parameters = inspect.signature(spec.score).parameters
    kwargs: dict[str, Any] = {"mode": mode, **(score_args or {})}
    if judge is not None and "judge" in parameters:
        kwargs["judge"] = judge
    result = spec.score(rows, **kwargs)
    scored = result.pop("samples", [])
    if len(scored) != len(rows):
        by_id = {str(s.get("id")): s for s in scored}
        scored = [by_id.get(entry.id, {}) for entry in prepared]
    lines = []
    for entry, row, sample in zip(prepared, rows, scored):
        raw = row[spec.response_key]
        extracted = sample.get("extracted")
        line = {"doc_id": entry.position, "id": entry.id, "prompt": entry.prompt, "raw_output": raw,
                "extracted": extracted, "target": sample.get("target"), "score": sample.get("score"),
                "resps": [[raw]], "filtered_resps": [extracted]}
        line.update({k: v for k, v in sample.items() if k not in line and k not in ("raw_output", "prompt")})
        lines.append(line)
    return result, lines


# -- distribution ----------------------------------------------------------------------------------
@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    created_group: bool = False

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def distributed_context() -> DistContext:
    """Rank and world size; under torchrun, joins (or creates) the default process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        created = True
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), created_group=created)


# -- the run ---------------------------------------------------------------------------------------
def benchmark_data_dir(data: dict | str | os.PathLike | None, name: str, *, split: str | None = None) -> Path:
    """`data` maps benchmark -> folder, or is one folder holding a subfolder per benchmark (or, for a
    single benchmark, the benchmark's own folder). A benchmark without a folder (no `--data`, or not in the map)
    loads its published dataset through `datasets` (eval/published.py); a folder or file that is a local copy of
    the published dataset (parquet/arrow, save_to_disk) is converted the same way, offline."""
    from mmpost.eval.published import is_published_copy, published_data_dir

    if data is None or (isinstance(data, dict) and name not in data):
        return published_data_dir(name, split=split)
    if isinstance(data, dict):
        folder = Path(data[name])
    else:
        root = Path(data)
        folder = root / name if (root / name).exists() else root
    if is_published_copy(folder):
        return published_data_dir(name, source=folder, split=split)
    return folder


def run_evaluation(
    model: str,
    benchmarks: list[str],
    data: dict | str | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    output: str | os.PathLike = "eval_results",
    max_new_tokens: int = 512,
    mode: str = "official",
    judge: Judge | None = None,
    score_args: dict[str, dict] | None = None,
    load_args: dict[str, dict] | None = None,
    prompt_args: dict[str, dict] | None = None,
    modality_args: dict[str, dict] | None = None,
    modalities: dict[str, Any] | None = None,
    dtype: str = "auto",
    use_cache: bool = True,
    splits: dict[str, str] | None = None,
) -> dict:
    """Generate with `model` on each benchmark and score officially; returns the results.json dict.

    Args:
        model: a model folder (or hub id), or a training run directory (its latest checkpoint is used).
        benchmarks: names registered in `mmpost.registry.BENCHMARKS`.
        data: {benchmark: folder} or one folder with a subfolder per benchmark; None (or a benchmark missing from
            the map) loads the published dataset (eval/published.py).
        limit: the first N items of each benchmark (before sharding).
        batch_size: prompts per generate call; never changes the answers kept.
        output: folder for results.json, samples_<benchmark>.jsonl and cache/.
        max_new_tokens: generation length (greedy decoding).
        mode: scorer mode, e.g. "official".
        judge: LLM judge for scorers whose official pipeline asks one (MathVista, MathVerse, DriveLM).
        score_args / load_args / prompt_args / modality_args: per-benchmark (or per-modality, for
            modality_args) keyword arguments, e.g. score_args={"screenspot": {"coords": "resized_pixels"}}.
        modalities: adapter instances to use instead of the registered ones, by modality name.
        dtype: "auto" (bfloat16 on GPU, float32 on CPU), "float32", "bfloat16" or "float16".
        use_cache: reuse and extend the response cache in `output/cache`.
        splits: {benchmark: split} of the published dataset, where it has several (RefCOCO).
    """
    context = distributed_context()
    try:
        return _run(model, benchmarks, data, context, limit=limit, batch_size=batch_size, output=Path(output),
                    max_new_tokens=max_new_tokens, mode=mode, judge=judge, score_args=score_args or {},
                    load_args=load_args or {}, prompt_args=prompt_args or {}, modality_args=modality_args or {},
                    modalities=modalities, dtype=dtype, use_cache=use_cache, splits=splits or {})
    finally:
        if context.created_group:
            torch.distributed.destroy_process_group()


def _run(model: str, benchmarks: list[str], data: dict | str, context: DistContext, *, limit, batch_size, output: Path,
         max_new_tokens, mode, judge, score_args, load_args, prompt_args, modality_args, modalities, dtype, use_cache,
         splits) -> dict:
    specs = [BENCHMARKS.get(name) for name in benchmarks]
    for spec in specs:
        if mode not in spec.modes:
            raise ValueError(f"{spec.name}: scorer mode '{mode}' not supported; choose one of {list(spec.modes)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Data first: a missing or unreachable benchmark fails before the model is loaded.
    data_dirs = {}
    for spec in specs:
        if context.rank == 0:
            data_dirs[spec.name] = benchmark_data_dir(data, spec.name, split=splits.get(spec.name))
        context.barrier()
        if context.rank != 0:  # the conversion is cached by rank 0; the others read the same folder
            data_dirs[spec.name] = benchmark_data_dir(data, spec.name, split=splits.get(spec.name))
    model_dir = resolve_model_dir(model)
    model_fp = model_fingerprint(model_dir)
    device = default_device()
    network, processor = load_eval_model(model_dir, dtype=dtype, device=device)
    generator = GreedyGenerator(network, processor, batch_size=batch_size, max_new_tokens=max_new_tokens)
    generation = {k: v for k, v in generator.settings.items() if k != "eos_token_ids"}
    cache_dir = output / "cache"
    entries: dict[str, dict] = {}
    for spec in specs:
        data_dir = data_dirs[spec.name]
        items = spec.load(data_dir, limit, **load_args.get(spec.name, {}))
        prepared = prepare_items(spec, items, data_dir, prompt_args=prompt_args.get(spec.name), mode=mode)
        options = modality_args.get(spec.modality or "", {})
        for entry in prepared:
            entry.cache_key = cache_key(model_fp, spec, entry, generation, options)
        cache = ResponseCache(cache_dir, spec.name, context.rank) if use_cache else None
        reused = sum(e.cache_key in cache for e in prepared) if cache is not None else 0
        mine = prepared[context.rank :: context.world]
        todo = [e for e in mine if cache is None or e.cache_key not in cache]
        own_records: dict[str, dict] = {}
        if todo:
            adapter = modality_adapter(spec, options, modalities)
            log.info("%s: generating %d of %d items on rank %d", spec.name, len(todo), len(mine), context.rank)
            for record in generate_for(spec, todo, generator, adapter, processor, on_batch=cache.append if cache else None):
                own_records[record["key"]] = record
        context.barrier()
        if context.rank == 0:
            records = _collect(spec, prepared, cache, own_records, context)
            entries[spec.name] = _score_entry(spec, prepared, records, output, mode=mode, judge=judge,
                                              score_args=score_args.get(spec.name), data_dir=data_dir,
                                              model_fp=model_fp, cached=reused)
        context.barrier()
    results_path = output / "results.json"
    if context.rank == 0:
        results = {
            "results": entries,
            "config": {"model": str(model), "model_dir": str(model_dir.resolve()) if model_dir.exists() else str(model_dir),
                       "model_fingerprint": model_fp, "generation": generation, "batch_size": batch_size,
                       "world_size": context.world, "limit": limit, "dtype": dtype, "device": device.type, "mode": mode},
            "n-samples": {name: {"effective": entry["n_samples"]} for name, entry in entries.items()},
            "versions": package_versions(),
        }
        output.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    context.barrier()
    return json.loads(results_path.read_text())


def _collect(spec: Benchmark, prepared: Sequence[PreparedItem], cache: ResponseCache | None, own: dict[str, dict],
             context: DistContext) -> list[dict]:
    """Every item's record, from all ranks' cache files (or this process's own, without a cache)."""
    if cache is not None:
        cache.reload()
        known = cache.records
    else:
        if context.world > 1:
            raise ValueError("use_cache=False works in one process only: ranks exchange answers through the cache files")
        known = own
    missing = [e.id for e in prepared if e.cache_key not in known]
    if missing:
        raise RuntimeError(f"{spec.name}: no answer for {len(missing)} item(s), e.g. {missing[:3]} (a rank failed?)")
    return [known[e.cache_key] for e in prepared]


def _score_entry(spec: Benchmark, prepared, records, output: Path, *, mode, judge, score_args, data_dir, model_fp, cached) -> dict:
    error = None
    try:
        result, lines = score_outputs(spec, prepared, records, mode=mode, judge=judge, score_args=score_args)
    except JudgeUnavailableError as failure:
        # The answers stay in the cache: rerun with a judge to score them without generating again.
        error = f"{type(failure).__name__}: {failure}"
        log.error("%s not scored: %s", spec.name, error)
        result = {"benchmark": spec.name, "mode": mode, "metrics": {}, "counts": {"total": len(prepared)}}
        lines = [{"doc_id": e.position, "id": e.id, "prompt": e.prompt, "raw_output": spec.response_prefix + r["output"],
                  "extracted": None, "target": None, "score": None} for e, r in zip(prepared, records)]
    output.mkdir(parents=True, exist_ok=True)
    with open(output / f"samples_{spec.name}.jsonl", "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    entry = {**result, "n_samples": len(prepared), "cached_answers": cached, "data": str(Path(data_dir).resolve()),
             "data_fingerprint": data_fingerprint(prepared), "model_fingerprint": model_fp, "scorer_mode": mode}
    if error:
        entry["error"] = error
    return entry
