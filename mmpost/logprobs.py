"""Per-token log-probs of completions: the one module where a model's logits become log-probs.

torchtune's `rlhf/sequence_processing.py` (`logits_to_logprobs`) is the model for it. Every token log-prob the
engine uses goes through `token_logprobs`: the rollout backend's sampling log-probs (`mmpost.rollout.hf`), and the
old-policy, reference and update passes (`completion_logprobs`). They all apply the sampling temperature and the
same suppressed-token mask, so a re-scored token has exactly the log-prob it was sampled with. The passes differ only
in how rows are laid out for the model; each returns logits, never log-probs:

- "padded" (`padded_logits`): one [left-padded prompt | right-padded completion] batch;
- "packed" (`packed_logprobs`, `pack_padded`, `packed_logits`): the rows' valid tokens end to end in one sequence,
  no padding, in micro-batches of at most `token_budget` tokens when set;
- "shared_prefix" (`shared_prefix_logits`): each distinct prompt once (`prefill`), its KV cache shared by its
  completions. The rollout backend's shared prefill for generation uses the same `prefill` and `gather_cache`.

All three give the same numbers up to float rounding (tests/test_packing.py, tests/test_prefix_sharing.py). Their
position ids come from `position_ids_for` (M-RoPE included). `micro_batch_rows` splits a batch's rows the way each
layout runs best. Which layout each pass of a run uses is decided once, when the run is built, in a `LogprobPlan`;
`completion_logprobs` runs the layout it is given.

Packed layout. A padded pass over rows of very different lengths spends most of its attention and MLP work on pad
tokens (left pad of short prompts, right pad after EOS). Packed, the valid tokens of every row ([prompt | completion
up to EOS]) are laid end to end in one sequence of shape [1, S]. Position ids restart at 0 for every row, and
transformers builds a block-causal mask from those restarts (`masking_utils.find_packed_sequence_indices`, used when
no attention mask is passed), so no token attends across rows, for sdpa, eager and flash-attention alike. Qwen-VL's
M-RoPE positions (3 rows: temporal, height, width) are computed per row with the model's own `get_rope_index` over
the padded layout, then the valid columns are kept; the packed `position_ids` is then [4, 1, S]: the 1-D text
positions (which the mask uses) stacked on the 3-D M-RoPE ones, the layout `Qwen2_5_VLTextModel.forward` documents
for packed inputs.

Shared-prefix layout. The G completions of a GRPO group share one prompt, and in multimodal RL the prompt (hundreds
to thousands of image/video tokens) is usually far longer than the completion. The naive pass runs [prompt |
completion] for every row, so the prompt's layers run G times. Here:

1. the distinct prompts of the rows run once, left-padded, with a KV cache (and with gradients in the update pass);
2. each layer's cached keys/values are gathered to the rows (`index_select`, whose backward sums the rows'
   gradients into the one prompt computation, so parameter gradients equal the naive pass's);
3. the completions run on top of the gathered cache, with positions continuing the prompt's (for M-RoPE the
   completion is text, so all three axes continue from the prompt's last position + 1, as `get_rope_index` gives).

The logit that predicts completion token 0 is the prompt's last-position logit; the others come from step 3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from mmpost.experience import RolloutBatch
from mmpost.model import accepts_argument, unwrap
from mmpost.types import PromptEncoding, collate_prompts

LOGPROB_LAYOUTS = ("padded", "packed", "shared_prefix")


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = 1.0,
                   suppressed_token_ids: Sequence[int] = (), mask: torch.Tensor | None = None,
                   full_distribution: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(logits / temperature, suppressed tokens at -inf)[target], in float32.

    logits [..., V], targets [...] long, mask [...] bool (optional; both moved to the logits' device). Returns
    (log-probs [...], and with `full_distribution` the whole log-softmax [..., V], else None). Masked slots are 0:
    padding after EOS may be a suppressed token (log-prob -inf), and -inf * 0 would put NaN into a loss.

    Pass the logits without keeping a name for them (`token_logprobs(model(...).logits, ...)`): the model's logits
    are then freed as soon as their float32 copy exists, so the tail never holds three [..., V] tensors at once.
    """
    logits = logits.float() / temperature
    if suppressed_token_ids:
        logits[..., list(suppressed_token_ids)] = float("-inf")
    log_dist = F.log_softmax(logits, dim=-1)
    logprobs = torch.gather(log_dist, -1, targets.to(logits.device).unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        logprobs = torch.where(mask.to(logits.device), logprobs, torch.zeros_like(logprobs))
    return logprobs, (log_dist if full_distribution else None)


@dataclass(frozen=True)
class LogprobPlan:
    """How every log-prob pass of a run lays out its rows: decided once (`LogprobPlan.decide`), then only read.

    `layout` serves the passes without gradients (old policy, reference) and splits rows into micro-batches for all
    passes; `layout_with_grad` serves the update's pass. `decision` says in words what was chosen and why (logged
    when the run is built).
    """

    layout: str = "padded"
    layout_with_grad: str = "padded"
    micro_batch_size: int = 1
    token_budget: int | None = None
    temperature: float = 1.0  # the sampling temperature, so a re-scored token has the log-prob it was sampled with
    decision: str = "padded"

    @classmethod
    def decide(cls, layout: str, *, micro_batch_size: int, token_budget: int | None = None, temperature: float = 1.0,
               gradient_checkpointing: bool = False, why: str = "") -> "LogprobPlan":
        """The plan for a resolved `algorithm.logprob_pass` (`layout`): shared_prefix with gradient checkpointing
        runs the update's pass padded, since checkpointed layers keep no KV cache to share (the old-policy and
        reference passes, without gradients, still share prefixes)."""
        if layout not in LOGPROB_LAYOUTS:
            raise ValueError(f"algorithm.logprob_pass: unknown layout {layout!r}; expected one of {', '.join(LOGPROB_LAYOUTS)}")
        with_grad = "padded" if layout == "shared_prefix" and gradient_checkpointing else layout
        decision = f"{layout}{f' ({why})' if why else ''}"
        if with_grad != layout:
            decision += f"; the update's pass runs {with_grad}: gradient checkpointing keeps no KV cache to share"
        if layout == "packed":
            decision += "; passes that need the full distribution (ASFT's SFT rows) run padded: a packed pass has none"
        return cls(layout, with_grad, micro_batch_size, token_budget, temperature, decision)

    def layout_for(self, *, with_grad: bool, full_distribution: bool = False) -> str:
        """The layout of one pass: with gradients (the update) or without; a full distribution is never packed."""
        layout = self.layout_with_grad if with_grad else self.layout
        return "padded" if full_distribution and layout == "packed" else layout

    def pass_options(self, *, with_grad: bool, full_distribution: bool = False) -> dict:
        """Keyword arguments of a policy kind's `logprobs` for one pass."""
        return dict(temperature=self.temperature, layout=self.layout_for(with_grad=with_grad, full_distribution=full_distribution),
                    token_budget=self.token_budget, full_distribution=full_distribution)

    def micro_batches(self, batch: RolloutBatch, rows: torch.Tensor) -> list[torch.Tensor]:
        """`rows` split for this plan's layout (`micro_batch_rows`)."""
        return micro_batch_rows(batch, rows, layout=self.layout, micro_batch_size=self.micro_batch_size,
                                token_budget=self.token_budget)


def completion_logprobs(
    model: nn.Module,
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
    """Log-probs [n, T] of the completion tokens of `rows`; with `full_distribution` also the [n, T, V] log-softmax.

    layout is one of `LOGPROB_LAYOUTS`, run as given (`LogprobPlan.layout_for` picks it). Two combinations cannot
    run and are errors: "packed" with `full_distribution` (masked slots need a distribution) and "shared_prefix"
    under gradient checkpointing with gradients on (checkpointed layers keep no KV cache to share).
    """
    if layout not in LOGPROB_LAYOUTS:
        raise ValueError(f"algorithm.logprob_pass: unknown layout {layout!r}; expected one of {', '.join(LOGPROB_LAYOUTS)}")
    if layout == "packed":
        if full_distribution:
            raise ValueError("a packed log-prob pass has no full distribution; run it padded (LogprobPlan.layout_for)")
        return packed_logprobs(model, batch, rows, pad_id=pad_id, token_budget=token_budget, temperature=temperature,
                               suppressed_token_ids=suppressed_token_ids), None
    if layout == "shared_prefix" and checkpointing_drops_cache(model):
        raise ValueError("a shared-prefix pass with gradients cannot run under gradient checkpointing (no KV cache is "
                         "kept); run it padded (LogprobPlan.layout_for)")
    pass_logits = shared_prefix_logits if layout == "shared_prefix" else padded_logits
    # The logits go to the tail unnamed (and without `**kwargs`, whose argument tuple would hold them): the tail
    # then owns the only reference and frees them once it has their float32 copy.
    return token_logprobs(pass_logits(model, batch, rows, pad_id), batch.completion_ids[rows], temperature=temperature,
                          suppressed_token_ids=suppressed_token_ids, mask=batch.completion_mask[rows].bool(),
                          full_distribution=full_distribution)


def micro_batch_rows(batch: RolloutBatch, rows: torch.Tensor, *, layout: str, micro_batch_size: int,
                     token_budget: int | None = None) -> list[torch.Tensor]:
    """Micro-batches of `rows` for a log-prob layout (row indices into `batch`, every row once), used by the update
    and by the old-policy and reference passes.

    - packed with a token budget: token-budget chunks (`token_budget_chunks` over prompt + completion lengths);
    - shared_prefix: rows ordered by prompt (stable), then `micro_batch_size` at a time, so a group's rows share
      a micro-batch and its prompt runs once rather than once per micro-batch it is spread over;
    - otherwise `micro_batch_size` rows at a time, in the given order.
    Gradients do not depend on the split: the update normalises by mini-batch-wide counts.
    """
    if layout == "packed" and token_budget:
        return [rows[chunk] for chunk in token_budget_chunks(row_token_counts(batch, rows), token_budget)]
    if layout == "shared_prefix":
        order = torch.sort(batch.prompt_index[rows], stable=True).indices
        rows = rows[order]
    return list(torch.split(rows, micro_batch_size))


def padded_inputs(batch: RolloutBatch, rows: torch.Tensor, pad_id: int) -> tuple[dict[str, torch.Tensor], int]:
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


def padded_logits(model: nn.Module, batch: RolloutBatch, rows: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Logits [n, T, V] predicting each completion token of `rows` (position j predicts token j), one padded pass."""
    inputs, width = padded_inputs(batch, rows, pad_id)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    T = batch.completion_ids.shape[1]
    # Only the T positions that predict completion tokens (and the last one) need the vocabulary projection.
    if accepts_argument(model, "logits_to_keep"):
        return model(**inputs, use_cache=False, logits_to_keep=T + 1).logits[:, :T, :]
    # The logit at position j predicts token j + 1.
    return model(**inputs, use_cache=False).logits[:, width - 1 : width - 1 + T, :]


def packed_logprobs(model: nn.Module, batch: RolloutBatch, rows: torch.Tensor, *, pad_id: int, temperature: float,
                    suppressed_token_ids: Sequence[int], token_budget: int | None) -> torch.Tensor:
    """Log-probs [n, T] of `rows` (0 at masked slots), each token-budget chunk run as one packed sequence."""
    device = next(model.parameters()).device
    T = batch.completion_ids.shape[1]
    chunks = token_budget_chunks(row_token_counts(batch, rows), token_budget) if token_budget else [torch.arange(len(rows))]
    pieces, order = [], []
    for chunk in chunks:
        inputs, width = padded_inputs(batch, rows[chunk], pad_id)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        packed, predictor, valid = pack_padded(model, inputs, width, T)
        targets = inputs["input_ids"][:, width : width + T][valid]
        picked, _ = token_logprobs(packed_logits(model, packed, predictor[valid]), targets, temperature=temperature,
                                   suppressed_token_ids=suppressed_token_ids)
        pieces.append(picked.new_zeros(valid.shape).masked_scatter(valid, picked))
        order.append(chunk)
    logprobs = torch.cat(pieces)
    return logprobs.index_select(0, torch.argsort(torch.cat(order)).to(logprobs.device))


# -- position ids ---------------------------------------------------------------------------------
ROPE_INDEX_ARGUMENTS = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "second_per_grid_ts")


def rope_index_module(model: nn.Module) -> nn.Module | None:
    """The submodule that computes multimodal (M-RoPE) position ids, e.g. `Qwen2_5_VLModel`; None for 1-D RoPE."""
    for module in unwrap(model).modules():
        if callable(getattr(module, "get_rope_index", None)):
            return module
    return None


def text_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """1-D positions that skip padding: [B, L] mask -> [B, L] long (0 at masked slots)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0) * attention_mask.long()


def position_ids_for(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Padding-independent position ids of a padded batch: [3, B, L] for M-RoPE models, else [B, L].

    For Qwen2-VL/2.5-VL the model's `get_rope_index` (Wang et al. 2024, M-RoPE: text tokens advance all three
    axes by 1; an image advances them by max(h, w) / merge) with the attention mask, so padding takes no position.
    """
    mask = inputs["attention_mask"]
    text = text_position_ids(mask)
    module = rope_index_module(model)
    if module is None:
        return text
    has_media = any(inputs.get(k) is not None for k in ("image_grid_thw", "video_grid_thw"))
    if not has_media or inputs.get("mm_token_type_ids") is None:
        return text.unsqueeze(0).expand(3, -1, -1)
    rope_arguments = {k: inputs[k] for k in ROPE_INDEX_ARGUMENTS if inputs.get(k) is not None}
    positions, _ = module.get_rope_index(inputs["input_ids"], attention_mask=mask, **rope_arguments)
    return positions


# -- the packed layout ----------------------------------------------------------------------------
def token_budget_chunks(lengths: Sequence[int] | torch.Tensor, budget: int) -> list[torch.Tensor]:
    """Split rows into micro-batches of at most `budget` tokens each (first-fit decreasing bin packing).

    lengths: [N] tokens per row. Returns a list of row-index tensors (each sorted ascending); a row longer than the
    budget gets a micro-batch of its own. Every row appears in exactly one chunk.
    """
    if budget <= 0:
        raise ValueError(f"algorithm.token_budget must be positive, got {budget}")
    lengths = [int(x) for x in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
    bins: list[list[int]] = []
    loads: list[int] = []
    for row in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        target = next((b for b, load in enumerate(loads) if load + lengths[row] <= budget), None)
        if target is None:
            bins.append([row])
            loads.append(lengths[row])
        else:
            bins[target].append(row)
            loads[target] += lengths[row]
    return [torch.tensor(sorted(b), dtype=torch.long) for b in bins]


def row_token_counts(batch: RolloutBatch, rows: torch.Tensor) -> torch.Tensor:
    """Valid tokens (prompt + completion through EOS) of each row: [n] long, the lengths a packed pass processes."""
    prompt = torch.tensor([batch.prompts[int(i)].input_ids.numel() for i in batch.prompt_index[rows]], dtype=torch.long)
    return prompt + batch.completion_mask[rows].sum(1).long()


def pack_padded(model: nn.Module, inputs: dict[str, torch.Tensor], width: int, completion_width: int):
    """Turn padded [left-padded prompt | right-padded completion] inputs into one packed row.

    Returns (packed inputs for the model, predictor index [n, T] into the packed sequence, valid [n, T] bool):
    the logit at packed position predictor[i, j] predicts completion token j of row i where valid[i, j].
    """
    mask = inputs["attention_mask"].bool()
    positions = position_ids_for(model, inputs)
    text = text_position_ids(inputs["attention_mask"])[mask].unsqueeze(0)  # [1, S], restarting at every row
    if positions.ndim == 3:
        packed_positions = torch.cat([text.unsqueeze(0), positions[:, mask].unsqueeze(1)], dim=0)  # [4, 1, S]
    else:
        packed_positions = text
    packed = {"input_ids": inputs["input_ids"][mask].unsqueeze(0), "position_ids": packed_positions}
    for key, value in inputs.items():
        if key in ("input_ids", "attention_mask", "position_ids"):
            continue
        if value.ndim >= 2 and value.shape[:2] == mask.shape:
            packed[key] = value[mask].unsqueeze(0)  # per-token fields such as mm_token_type_ids
        else:
            packed[key] = value  # media rows, already in row order
    flat_index = mask.flatten().long().cumsum(0).view(mask.shape) - 1
    predictor = flat_index[:, width - 1 : width - 1 + completion_width]
    valid = mask[:, width : width + completion_width]
    return packed, predictor, valid


def packed_logits(model: nn.Module, packed: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
    """Logits [K, V] at the K positions `keep` of one packed sequence (`pack_padded`'s inputs and `predictor[valid]`).

    Only those positions go through the LM head (`logits_to_keep` as an index tensor when the model takes it), so
    prompt tokens cost no vocabulary projection.
    """
    if accepts_argument(model, "logits_to_keep"):
        return model(**packed, use_cache=False, logits_to_keep=keep).logits[0]
    return model(**packed, use_cache=False).logits[0, keep]


# -- the shared-prefix layout -----------------------------------------------------------------------
def cache_argument(model: nn.Module) -> str:
    # transformers 5.2x renamed `past_key_values` to `cache` (the old name still works, with a deprecation warning).
    return "cache" if accepts_argument(model, "cache") else "past_key_values"


def output_cache(output) -> DynamicCache:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def gather_cache(cache: DynamicCache, index: torch.Tensor) -> DynamicCache:
    """A new cache whose row r is row index[r] of `cache` in every layer (differentiable: gradients sum back)."""
    layers = [(layer.keys.index_select(0, index), layer.values.index_select(0, index)) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=layers)


def prefill(model: nn.Module, inputs: dict[str, torch.Tensor], position_ids: torch.Tensor):
    """One cached forward over left-padded prompts: (last-position logits [P, V], KV cache)."""
    logits_to_keep = {"logits_to_keep": 1} if accepts_argument(model, "logits_to_keep") else {}
    output = model(**inputs, position_ids=position_ids, use_cache=True, **logits_to_keep)
    return output.logits[:, -1, :], output_cache(output)


def collated_prompts(prompts: Sequence[PromptEncoding], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in collate_prompts(prompts, pad_id).items()}


def step_collation(batch: RolloutBatch, distinct: torch.Tensor, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The collated inputs of `batch`'s prompts `distinct`, made once per batch: the reference and update passes of a
    step then hand the model the same tensors (no second copy of the pixels; the vision cache recognises them)."""
    memo = batch.collated_prompts
    key = (tuple(distinct.tolist()), pad_id, str(device))
    if key not in memo:
        memo[key] = collated_prompts([batch.prompts[int(i)] for i in distinct], pad_id, device)
    return memo[key]


def continuation_positions(prompt_positions: torch.Tensor, length: int) -> torch.Tensor:
    """Positions of `length` text tokens after left-padded prompts: last prompt position + 1 + j.

    prompt_positions: [3, P, W] (M-RoPE) or [P, W]; returns [3, P, length] or [P, length].
    """
    steps = torch.arange(1, length + 1, device=prompt_positions.device)
    return prompt_positions[..., -1:] + steps


def shared_prefix_logits(model: nn.Module, batch: RolloutBatch, rows: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Logits [n, T, V] predicting each completion token of `rows` (position j predicts token j)."""
    device = next(model.parameters()).device
    distinct, inverse = torch.unique(batch.prompt_index[rows], return_inverse=True)
    inverse = inverse.to(device)
    prompts = step_collation(batch, distinct, pad_id, device)
    positions = position_ids_for(model, prompts)
    first, cache = prefill(model, prompts, positions)
    prompt_mask = prompts["attention_mask"]
    first = first.index_select(0, inverse).unsqueeze(1)  # [n, 1, V]
    completion_ids = batch.completion_ids[rows].to(device)
    width = completion_ids.shape[1]
    if width <= 1:
        return first[:, :width]
    # The last completion token predicts nothing we score, so it is not fed.
    fed = completion_ids[:, : width - 1]
    attention = torch.cat([prompt_mask.index_select(0, inverse),
                           batch.completion_mask[rows, : width - 1].long().to(device)], 1)
    later_positions = continuation_positions(positions, width - 1).index_select(-2, inverse)
    output = model(input_ids=fed, attention_mask=attention, position_ids=later_positions, use_cache=True,
                   **{cache_argument(model): gather_cache(cache, inverse)})
    return torch.cat([first, output.logits], dim=1)


def checkpointing_drops_cache(model: nn.Module) -> bool:
    """True when transformers' gradient checkpointing would discard the KV cache of this forward pass
    (`GradientCheckpointingLayer` turns `use_cache` off in training with gradients), so no prefix can be shared."""
    return (torch.is_grad_enabled() and model.training
            and any(getattr(m, "gradient_checkpointing", False) for m in unwrap(model).modules()))
