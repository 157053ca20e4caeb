"""Per-token log-probs of completions: the one place where logits become log-probs.

Every token log-prob the engine uses goes through `token_logprobs`: the rollout backend's sampling log-probs
(`mmpost.rollout.hf`), and the old-policy, reference and update passes (`completion_logprobs`). They all apply the
sampling temperature and the same suppressed-token mask, so a re-scored token has exactly the log-prob it was
sampled with. The passes differ only in how rows are laid out for the model; each returns logits, never
log-probs:

- "padded" (`padded_logits`, here): one [left-padded prompt | right-padded completion] batch;
- "packed" (`mmpost.packing.packed_logits`): the rows' valid tokens end to end in one sequence, no padding, in
  micro-batches of at most `token_budget` tokens when set;
- "shared_prefix" (`mmpost.prefix_sharing.shared_prefix_logits`): each distinct prompt once, its KV cache shared by
  its completions.

All three give the same numbers up to float rounding (tests/test_packing.py, tests/test_prefix_sharing.py).
`micro_batch_rows` splits a batch's rows the way each layout runs best. Which layout each pass of a run uses is
decided once, when the run is built, in a `LogprobPlan`; `completion_logprobs` runs the layout it is given.
torchtune's `rlhf/sequence_processing.py` (`logits_to_logprobs`) is the model for this split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmpost.model import accepts_argument, collate_prompts
from mmpost.packing import pack_padded, packed_logits, row_token_counts, token_budget_chunks
from mmpost.prefix_sharing import checkpointing_drops_cache, shared_prefix_logits
from mmpost.types import RolloutBatch

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
