"""Token policies: prompt encoding, forward-pass collation and per-token log-probs.

Every log-prob the engine uses (old, reference, update) comes from `completion_logprobs`, under the same
temperature and the same suppressed-token mask used at sampling time, so a re-scored token has exactly
the log-prob it was sampled with.
"""
from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mmpost.registry import POLICIES
from mmpost.types import Modality, PromptEncoding, RolloutBatch, Sample, Task


@POLICIES.register("token")
class TokenPolicy:
    """A chat model plus the task's prompts and the modality's encoder.

    The policy kind of every transformers model that emits tokens (VLMs, audio LMs, VLAs with action tokens,
    autoregressive world models over frame tokens): a trajectory is a token sequence, log-probs are per token.
    """

    # How the log-prob passes lay rows out (`algorithm.logprob_pass`, `algorithm.token_budget`); set by the builder.
    logprob_pass: str = "padded"
    token_budget: int | None = None

    @classmethod
    def load_model(cls, model_config, path: str) -> torch.nn.Module:
        from mmpost.model import load_model

        return load_model(model_config, path)

    @classmethod
    def load_processor(cls, path: str, trust_remote_code: bool = False) -> Any:
        from mmpost.model import load_processor

        return load_processor(path, trust_remote_code=trust_remote_code)

    def __init__(self, model: torch.nn.Module, processor: Any, task: Task, modality: Modality) -> None:
        self.model = model
        self.processor = processor
        self.task = task
        self.modality = modality
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.eos_token_ids = _eos_ids(self.tokenizer, model)
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.suppressed_token_ids = _media_and_control_ids(self.tokenizer, self.eos_token_ids)
        # A task may restrict the vocabulary (a VLA emits only action tokens): everything else is suppressed
        # at sampling and re-scoring alike.
        allowed = getattr(task, "allowed_token_ids", None)
        if callable(allowed):
            keep = set(allowed(self.tokenizer)) | set(self.eos_token_ids)
            vocabulary = _vocabulary_size(model, self.tokenizer)
            self.suppressed_token_ids = sorted(set(self.suppressed_token_ids) | (set(range(vocabulary)) - keep))

    # -- prompts and targets ----------------------------------------------------------------------
    def encode_prompts(self, samples: Sequence[Sample]) -> list[PromptEncoding]:
        return [self.modality.encode_prompt(self.processor, self.task.prompt(s), s) for s in samples]

    def encode_target(self, text: str) -> list[int]:
        """Demonstration tokens, ending with the end-of-turn token the model must learn to emit."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_token_ids[0]]

    def decode(self, completion_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        return [
            self.tokenizer.decode(ids[m.bool()].tolist(), skip_special_tokens=True)
            for ids, m in zip(completion_ids, mask)
        ]

    def logprobs(self, model: torch.nn.Module, batch: RolloutBatch, rows: torch.Tensor, *, temperature: float,
                 full_distribution: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs [n, T] of `rows` under the sampling temperature and vocabulary mask."""
        return completion_logprobs(model, batch, rows, pad_id=self.pad_token_id, temperature=temperature,
                                   suppressed_token_ids=self.suppressed_token_ids, full_distribution=full_distribution,
                                   layout=self.logprob_pass, token_budget=self.token_budget)


def completion_mask(completion_ids: torch.Tensor, eos_token_ids: Sequence[int]) -> torch.Tensor:
    """1 for tokens up to and including the first EOS, 0 after it. [N, T] -> [N, T] float."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_token_ids), device=completion_ids.device))
    # Tokens strictly after the first EOS have at least one EOS before them.
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).float()


def pad_completions(sequences: Sequence[Sequence[int]], pad_id: int, min_length: int = 1) -> torch.Tensor:
    width = max([len(s) for s in sequences] + [min_length])
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out


def collate_prompts(prompts: Sequence[PromptEncoding], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prompt ids and concatenate media rows along dim 0."""
    width = max(p.input_ids.numel() for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        n = p.input_ids.numel()
        input_ids[i, width - n :] = p.input_ids
        attention_mask[i, width - n :] = 1
    batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
    for key in sorted({k for p in prompts for k in p.token_fields}):
        values = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            if key in p.token_fields:
                values[i, width - p.input_ids.numel() :] = p.token_fields[key]
        batch[key] = values
    # A text-only prompt contributes no media rows; the model matches media rows to placeholder tokens in order.
    for key in sorted({k for p in prompts for k in p.media}):
        batch[key] = torch.cat([p.media[key] for p in prompts if key in p.media], dim=0)
    return batch


def forward_inputs(batch: RolloutBatch, rows: torch.Tensor, pad_id: int) -> tuple[dict[str, torch.Tensor], int]:
    """[left-padded prompt | right-padded completion] inputs for `rows`; returns inputs and the prompt width."""
    prompts = [batch.prompts[int(i)] for i in batch.prompt_index[rows]]
    inputs = collate_prompts(prompts, pad_id)
    width = inputs["input_ids"].shape[1]
    completion_ids = batch.completion_ids[rows]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], completion_ids], dim=1)
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], batch.completion_mask[rows].long()], dim=1)
    for key in {k for p in prompts for k in p.token_fields}:
        inputs[key] = torch.cat([inputs[key], torch.zeros_like(completion_ids, dtype=inputs[key].dtype)], dim=1)
    return inputs, width


LOGPROB_LAYOUTS = ("padded", "packed", "shared_prefix")


def completion_logprobs(
    model: torch.nn.Module,
    batch: RolloutBatch,
    rows: torch.Tensor,
    *,
    pad_id: int,
    temperature: float = 1.0,
    suppressed_token_ids: Sequence[int] = (),
    full_distribution: bool = False,
    layout: str = "padded",
    token_budget: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of the completion tokens of `rows`: [n, T]; with `full_distribution`, also [n, T, V] log-softmax.

    layout (`algorithm.logprob_pass`), all giving the same numbers up to float rounding:
    - "padded": one [left-padded prompt | right-padded completion] batch;
    - "packed": rows' valid tokens end to end, no padding (`mmpost.packing`), in micro-batches of at most
      `token_budget` tokens when set; with `full_distribution` it runs padded (masked slots need a distribution);
    - "shared_prefix": each distinct prompt once, its KV cache shared by its completions (`mmpost.prefix_sharing`);
      padded instead when gradient checkpointing is on and gradients are needed (checkpointed layers keep no cache).
    """
    if layout == "shared_prefix":
        from mmpost.prefix_sharing import checkpointing_drops_cache, shared_prefix_completion_logprobs

        # Under gradient checkpointing the layers keep no KV cache, so the update pass runs padded (same numbers).
        if checkpointing_drops_cache(model):
            layout = "padded"
    if layout == "shared_prefix":
        return shared_prefix_completion_logprobs(model, batch, rows, pad_id=pad_id, temperature=temperature,
                                                 suppressed_token_ids=suppressed_token_ids,
                                                 full_distribution=full_distribution)
    if layout == "packed" and not full_distribution:
        return _packed_logprobs(model, batch, rows, pad_id=pad_id, temperature=temperature,
                                suppressed_token_ids=suppressed_token_ids, token_budget=token_budget), None
    if layout not in LOGPROB_LAYOUTS:
        raise ValueError(f"algorithm.logprob_pass: unknown layout {layout!r}; expected one of {', '.join(LOGPROB_LAYOUTS)}")
    from mmpost.packing import accepts_argument

    inputs, width = forward_inputs(batch, rows, pad_id)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    T = batch.completion_ids.shape[1]
    # Only the T positions that predict completion tokens (and the last one) need the vocabulary projection.
    if accepts_argument(model, "logits_to_keep"):
        logits = model(**inputs, use_cache=False, logits_to_keep=T + 1).logits[:, :T, :]
    else:
        # The logit at position j predicts token j + 1.
        logits = model(**inputs, use_cache=False).logits[:, width - 1 : width - 1 + T, :]
    logits = logits.float() / temperature
    if suppressed_token_ids:
        logits[..., list(suppressed_token_ids)] = float("-inf")
    log_dist = F.log_softmax(logits, dim=-1)
    targets = inputs["input_ids"][:, width : width + T].unsqueeze(-1)
    logprobs = torch.gather(log_dist, -1, targets).squeeze(-1)
    # Padding after EOS may be a suppressed token (log-prob -inf); it is masked out everywhere, so zero it
    # here rather than let -inf * 0 = NaN reach a loss.
    mask = inputs["attention_mask"][:, width : width + T].bool()
    logprobs = torch.where(mask, logprobs, torch.zeros_like(logprobs))
    return logprobs, (log_dist if full_distribution else None)


def _packed_logprobs(model: torch.nn.Module, batch: RolloutBatch, rows: torch.Tensor, *, pad_id: int, temperature: float,
                     suppressed_token_ids: Sequence[int], token_budget: int | None) -> torch.Tensor:
    """[n, T] log-probs of `rows`, each token-budget chunk run as one packed sequence."""
    from mmpost.packing import packed_completion_logprobs, row_token_counts, token_budget_chunks

    device = next(model.parameters()).device
    T = batch.completion_ids.shape[1]
    chunks = token_budget_chunks(row_token_counts(batch, rows), token_budget) if token_budget else [torch.arange(len(rows))]
    pieces, order = [], []
    for chunk in chunks:
        inputs, width = forward_inputs(batch, rows[chunk], pad_id)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        pieces.append(packed_completion_logprobs(model, inputs, width, T, temperature=temperature,
                                                 suppressed_token_ids=suppressed_token_ids))
        order.append(chunk)
    logprobs = torch.cat(pieces)
    return logprobs.index_select(0, torch.argsort(torch.cat(order)).to(logprobs.device))


@contextlib.contextmanager
def adapter_disabled(model: torch.nn.Module):
    """Run a PEFT model as its base model (the reference when the policy is a LoRA adapter)."""
    unwrapped = getattr(model, "module", model)
    with unwrapped.disable_adapter():
        yield


def _vocabulary_size(model: torch.nn.Module, tokenizer: Any) -> int:
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return int(embeddings.weight.shape[0]) if embeddings is not None else len(tokenizer)


def _eos_ids(tokenizer: Any, model: torch.nn.Module) -> list[int]:
    ids: list[int] = []
    generation_config = getattr(model, "generation_config", None)
    eos = getattr(generation_config, "eos_token_id", None)
    for value in ([eos] if isinstance(eos, int) else list(eos or [])) + [tokenizer.eos_token_id]:
        if value is not None and value not in ids:
            ids.append(int(value))
    if not ids:
        raise ValueError("the tokenizer and generation config define no EOS token")
    return ids


def _media_and_control_ids(tokenizer: Any, eos_token_ids: Sequence[int]) -> list[int]:
    """Special tokens a completion must never contain: media placeholders and chat control tokens.

    A sampled `<|image_pad|>` breaks the next forward pass ("image features and image tokens do not
    match"), so sampling and re-scoring both exclude them; EOS stays allowed.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            special.add(tokenizer.convert_tokens_to_ids(token.content))
    return sorted(i for i in special if i is not None and i not in set(eos_token_ids))
