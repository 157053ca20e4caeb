"""Why a run learns or does not: the numbers to read before tuning anything.

Per step (on the step's own rollouts, before the update, logged under `diag/`):
- `diag/entropy`: per-token entropy of the sampling distribution (temperature and vocabulary mask applied), exact over
  the vocabulary; a policy whose entropy collapses has stopped exploring.
- `diag/kl_to_start`: per-token KL(pi_theta || pi_start) to the warm start (the run's reference, the LoRA base, or a
  frozen copy of the starting weights), exact over the vocabulary: how far training has moved the policy.
- `diag/clipped_ratio`: the share of sampled completions that fill `rollout.max_new_tokens` without an end token
  (TRL's `completions/clipped_ratio`); a first step where half are cut logs a warning, because a cut answer scores as
  no answer (a 4-number digit sum at 16 tokens did, unnoticed, in the eighth session).
- `diag/zero_variance_group_fraction`: groups whose rewards are all equal give GRPO no gradient; a run whose groups
  are all flat (all right or all wrong) cannot learn from its rollouts, whatever the loss.
- `diag/label_logprob` (and `/<kind>`): log pi(y*|q) of the step's ground-truth rows (SFT's and CHORD's
  demonstrations, ViSurf's injected labels) under the policy before the update: how well it already states the label.
- `diag/truth_accuracy`, `diag/reward_truth_agreement/<reward>`: for label-free or learned rewards (the task's
  accuracy reward is not among the training rewards, e.g. MM-UPT's vote), the rollouts' accuracy against the hidden
  labels and how often each reward part agrees with it (part >= 0.5 exactly when the answer is right).
The clip fraction (`loss/clip_fraction`) and each reward part's mean (`reward/<name>`) are logged by the loss and the
scorer already.

Before and after training (`summary.json`): held-out pass@1 (greedy, `heldout_accuracy_*`), and from k samples per
held-out prompt at the training temperature (k = the group size unless `eval.pass_k` says otherwise): the sampled
accuracy (pass@1 at temperature), pass@k (the best of k: 1 if any is right, for a 0/1 accuracy) and the majority
vote's accuracy (maj@k). pass@k - pass@1 is the headroom that group-relative RL can turn into greedy accuracy.

The math is in small pure functions; `RunDiagnostics` does the plumbing.
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from collections import Counter
from typing import Any, Callable, Sequence

import torch

from mmpost.algos.advantages import zero_variance_groups
from mmpost.experience import RowKind

log = logging.getLogger(__name__)


# -- pure functions ----------------------------------------------------------------------------------
def token_entropy(log_dist: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum_v p_v log p_v per position. log_dist [..., V] log-probabilities (-inf allowed) -> [...]."""
    probs = log_dist.exp()
    return -(probs * log_dist.nan_to_num(0.0, neginf=0.0)).sum(-1)


def token_kl(log_dist: torch.Tensor, ref_log_dist: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_v p_v (log p_v - log q_v) per position, exact over the vocabulary. [..., V] -> [...].

    Entries with p_v = 0 contribute nothing (masked vocabulary entries are -inf in both)."""
    probs = log_dist.exp()
    difference = (log_dist - ref_log_dist).nan_to_num(0.0, posinf=0.0, neginf=0.0)
    return (probs * difference).sum(-1).clamp(min=0.0)


def masked_sum_count(values: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(sum of values where mask, number of such entries), for means reduced across micro-batches and processes."""
    mask = mask.to(values.dtype)
    return float((values * mask).sum()), float(mask.sum())


def zero_variance_group_counts(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[float, float]:
    """(groups whose rewards are all equal, groups): such groups get zero GRPO advantages. [N], [N] -> counts."""
    if rewards.numel() == 0:
        return 0.0, 0.0
    flat = zero_variance_groups(rewards.float(), group_ids)
    groups = group_ids.unique()
    return float(sum(bool(flat[group_ids == g][0]) for g in groups)), float(len(groups))


def clipped_counts(completion_ids: torch.Tensor, completion_mask: torch.Tensor, eos_token_ids: Sequence[int],
                   max_new_tokens: int) -> tuple[float, float]:
    """(completions cut at the token limit, completions): a row is cut when it fills all `max_new_tokens` without an
    end token (TRL's `completions/clipped_ratio`, verl's `response_length/clip_ratio`). Read from the mask, not from the
    padding, because Qwen's pad token is also one of its end tokens. [N, T], [N, T] -> counts."""
    if completion_ids.numel() == 0:
        return 0.0, float(completion_ids.shape[0])
    lengths = completion_mask.sum(dim=1).long()
    full = lengths >= max_new_tokens
    last = completion_ids.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    ended = torch.isin(last, torch.tensor(list(eos_token_ids), device=last.device))
    return float((full & ~ended).sum()), float(completion_ids.shape[0])


def agreement(reward: Sequence[float], truth: Sequence[float], *, threshold: float = 0.5) -> float:
    """Fraction of items where the reward and the truth agree on right/wrong (both >= threshold or both below);
    items where either is missing (None/NaN) are left out."""
    pairs = [(r, t) for r, t in zip(reward, truth)
             if r is not None and t is not None and not math.isnan(r) and not math.isnan(t)]
    if not pairs:
        return float("nan")
    return sum((r >= threshold) == (t >= threshold) for r, t in pairs) / len(pairs)


def pass_at_k(scores: Sequence[Sequence[float]]) -> float:
    """Mean over prompts of the best of each prompt's k scores: pass@k for a 0/1 accuracy (1 if any sample is
    right), best-of-k for a graded one. scores: per prompt, its k sample scores (None = not applicable)."""
    best = [max(s for s in row if s is not None) for row in scores if any(s is not None for s in row)]
    return sum(best) / len(best) if best else float("nan")


def sampled_accuracy(scores: Sequence[Sequence[float]]) -> float:
    """Mean score of all samples: pass@1 at the sampling temperature (the unbiased estimate from k samples)."""
    values = [s for row in scores for s in row if s is not None]
    return sum(values) / len(values) if values else float("nan")


def contested(answers: Sequence[str]) -> bool:
    """Do a prompt's k answers disagree? Only such groups have non-zero rewards' spread under a vote reward
    (MM-UPT), so the vote's accuracy on them, not on all prompts, is what the policy gradient follows."""
    return len(set(answers)) > 1


def majority_vote_correct(answers: Sequence[str], scores: Sequence[float | None]) -> float | None:
    """Is the most frequent answer right? The score of its first occurrence (ties: the answer seen first, as
    `Counter.most_common`); None when no sample is scored."""
    if not answers:
        return None
    winner = Counter(answers).most_common(1)[0][0]
    return scores[answers.index(winner)]


# -- plumbing ----------------------------------------------------------------------------------------
class RunDiagnostics:
    """The per-step pass (entropy, KL to the warm start) and the held-out sampling pass of one run."""

    def __init__(self, run: Any) -> None:
        self.every = int(run.config.eval.diagnostics_every or 0)
        from mmpost.policy import TokenPolicy

        # Entropy and KL over a vocabulary exist for token policies; a denoising step's Gaussian has its own terms.
        self.token_policy = isinstance(run.policy, TokenPolicy)
        self._warned_clipped = False
        self.start_model: torch.nn.Module | None = None
        self.start_mode = "none"
        self._start_pending = bool(self.every and self.token_policy and run.config.eval.kl_to_start)
        self._kinds: list[str] | None = None  # the training rows' question kinds, read on first use

    def _set_start_model(self, run: Any) -> None:
        """The warm start: the run's reference when it has one (the initial weights, also on resume), the LoRA base,
        or a frozen copy loaded from `model.path` (the starting weights, not a resumed checkpoint)."""
        config = run.config.model
        if run.reference is not None:
            self.start_model, self.start_mode = run.reference, "reference"
        elif config.lora.enabled:
            self.start_mode = "adapter_disabled"
        else:
            from mmpost.registry import POLICIES

            started = time.perf_counter()
            model = POLICIES.get(config.policy).load_model(config, config.path)
            model.requires_grad_(False)
            model.eval()
            self.start_model, self.start_mode = model.to(run.accelerator.device), "copy"
            log.info("diagnostics: loaded the warm start %s for KL to start (%.1f s)", config.path, time.perf_counter() - started)

    # -- per step ---------------------------------------------------------------------------------------
    def step_metrics(self, run: Any, batch: Any, step: int) -> dict[str, float]:
        """Diagnostics of a step's rollouts, before the update (so on the policy that sampled them)."""
        started = time.perf_counter()
        policy_rows = batch.rows_of(RowKind.POLICY)
        metrics: dict[str, float] = {}
        if batch.rewards is not None and bool(policy_rows.any()):
            metrics["diag/zero_variance_group_fraction"] = zero_variance_group_counts(
                batch.rewards[policy_rows], batch.group_ids[policy_rows])
        metrics.update(self._truth_metrics(run, batch, policy_rows))
        vocabulary = getattr(run.policy, "vocabulary", None)
        if self.token_policy and vocabulary is not None and bool(policy_rows.any()):
            clipped = clipped_counts(batch.completion_ids[policy_rows], batch.completion_mask[policy_rows],
                                     vocabulary.eos_token_ids, run.sampling.max_new_tokens)
            metrics["diag/clipped_ratio"] = clipped
            if not self._warned_clipped and clipped[0] >= 0.5 * clipped[1] > 0:
                self._warned_clipped = True
                log.warning("step %d: %d of %d sampled completions filled rollout.max_new_tokens=%d without an end "
                            "token; if the task's answers are longer, they are cut before they finish (raise "
                            "rollout.max_new_tokens)", step, int(clipped[0]), int(clipped[1]), run.sampling.max_new_tokens)
        if self.every and self.token_policy and step % self.every == 0 and bool(policy_rows.any()):
            metrics.update(self._distribution_metrics(run, batch, torch.nonzero(policy_rows).flatten()))
        if self.every and self.token_policy and step % self.every == 0:
            metrics.update(self._label_metrics(run, batch))
        metrics["perf/diagnostics_s"] = time.perf_counter() - started
        return _reduce_means(metrics)

    @torch.no_grad()
    def _distribution_metrics(self, run: Any, batch: Any, rows: torch.Tensor) -> dict[str, float]:
        from mmpost.logprobs import micro_batch_rows
        from mmpost.policy import adapter_disabled

        if self._start_pending:  # loaded on first use: runs without rollouts (SFT) never pay for it
            self._start_pending = False
            self._set_start_model(run)
        settings = run.plan.loss
        passes = settings.passes
        options = passes.pass_options(with_grad=False, full_distribution=True)  # a full distribution is never packed
        sums = {"entropy": [0.0, 0.0], "kl": [0.0, 0.0]}
        chunks = micro_batch_rows(batch, rows, layout=options["layout"], micro_batch_size=passes.micro_batch_size,
                                  token_budget=passes.token_budget)
        for chunk in chunks:
            _, log_dist = settings.policy.logprobs(run.model, batch, chunk, **options)
            mask = batch.completion_mask[chunk].to(log_dist.device)
            entropy = masked_sum_count(token_entropy(log_dist.float()), mask)
            sums["entropy"][0] += entropy[0]
            sums["entropy"][1] += entropy[1]
            reference = None
            if self.start_model is not None:
                _, reference = settings.policy.logprobs(self.start_model, batch, chunk, **options)
            elif self.start_mode == "adapter_disabled":
                with adapter_disabled(run.model):
                    _, reference = settings.policy.logprobs(run.model, batch, chunk, **options)
            if reference is not None:
                kl = masked_sum_count(token_kl(log_dist.float(), reference.float()), mask)
                sums["kl"][0] += kl[0]
                sums["kl"][1] += kl[1]
        out = {"diag/entropy": tuple(sums["entropy"])}
        if self.start_mode != "none":
            out["diag/kl_to_start"] = tuple(sums["kl"])
        return out

    @torch.no_grad()
    def _label_metrics(self, run: Any, batch: Any) -> dict[str, Any]:
        """`diag/label_logprob`: log pi(y*|q), summed over the label's tokens, of the step's ground-truth rows (SFT's
        and CHORD's demonstrations, ViSurf's injected labels) under the policy before the update, mean over rows;
        per question kind too where the task's rows carry one. How well the policy already states the label is what
        SFT's loss moves directly and ViSurf's label term moves in proportion to the label's advantage."""
        from mmpost.logprobs import micro_batch_rows

        if self._kinds is None:  # every process logs the same keys (the means are reduced over processes)
            self._kinds = sorted({str(r["kind"]) for r in run.train_rows if isinstance(r, dict) and "kind" in r})
        labelled = torch.tensor([s in (RowKind.LABEL, RowKind.EXPERT) for s in batch.sources], dtype=torch.bool)
        sums = {"": [0.0, 0.0], **{kind: [0.0, 0.0] for kind in self._kinds}}
        if bool(labelled.any()):
            settings = run.plan.loss
            options = settings.passes.pass_options(with_grad=False, full_distribution=False)
            for chunk in micro_batch_rows(batch, torch.nonzero(labelled).flatten(), layout=options["layout"],
                                          micro_batch_size=settings.passes.micro_batch_size,
                                          token_budget=settings.passes.token_budget):
                logprobs, _ = settings.policy.logprobs(run.model, batch, chunk, **options)
                per_row = (logprobs.float() * batch.completion_mask[chunk].to(logprobs.device)).sum(1)
                for row, value in zip(chunk.tolist(), per_row.tolist()):
                    sample = batch.samples[int(batch.prompt_index[row])]
                    kind = str(sample.get("kind")) if isinstance(sample, dict) else None
                    for key in ("", kind) if kind in sums else ("",):
                        sums[key][0] += value
                        sums[key][1] += 1.0
        if not self._kinds and not bool(labelled.any()):
            return {}
        return {("diag/label_logprob" + (f"/{k}" if k else "")): tuple(v) for k, v in sums.items()}

    def _truth_metrics(self, run: Any, batch: Any, policy_rows: torch.Tensor) -> dict[str, Any]:
        """Label-free or learned rewards: the rollouts' accuracy against the hidden labels and each reward part's
        agreement with it. Samples carry hidden labels as `hidden_answer` where training must not see `answer`."""
        truth_name = getattr(run.task, "truth_reward", None) or run.task.accuracy_reward
        if truth_name in batch.reward_parts or not bool(policy_rows.any()):
            return {}
        rows = torch.nonzero(policy_rows).flatten().tolist()
        samples = [_with_hidden_label(batch.samples[int(batch.prompt_index[i])]) for i in rows]
        if not all("answer" in s for s in samples):
            return {}
        truth = _score(truth_name, [batch.completions[i] for i in rows], samples,
                       [batch.completion_ids[i][batch.completion_mask[i].bool()].tolist() for i in rows])
        metrics: dict[str, Any] = {"diag/truth_accuracy": _sum_count([t for t in truth if t is not None])}
        for name, part in batch.reward_parts.items():
            values = [float(part[i]) for i in rows]
            pairs = [(v, t) for v, t in zip(values, truth) if t is not None and not math.isnan(v)]
            if pairs:
                metrics[f"diag/reward_truth_agreement/{name}"] = (agreement(*zip(*pairs)) * len(pairs), float(len(pairs)))
        return metrics

    # -- held-out ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def heldout_sampling(self, run: Any, decode: Callable[[list], list[dict]]) -> dict[str, float]:
        """k samples per held-out prompt at the training temperature: sampled accuracy, pass@k and maj@k. `decode(rows)`
        turns held-out rows into samples (the trainer's modality decode; passed in, so this module imports no trainer)."""
        k = run.config.eval.pass_k if run.config.eval.pass_k is not None else run.sampling.n
        if not k or not run.heldout_rows or callable(getattr(run.task, "evaluate_policy", None)) or not self.token_policy:
            return {}
        from dataclasses import replace

        from mmpost.distributed import same_count_on_every_rank
        from mmpost.update import _all_reduce

        params = replace(run.sampling, n=k, greedy=False,
                         max_new_tokens=run.config.eval.max_new_tokens or run.sampling.max_new_tokens)
        vote_key: Callable[[str], str] = getattr(run.task, "vote_key", None) or (lambda text: text.strip())
        rows = list(run.heldout_rows)[run.rank :: run.world]
        scored = len(rows)
        padded = same_count_on_every_rank(len(rows), needed=run.plan.sharded)
        if padded > len(rows):
            filler = rows or list(run.heldout_rows)[:1]
            rows = rows + [filler[i % len(filler)] for i in range(padded - len(rows))]
        # Sampling must not disturb the training run's random stream (a resumed run would diverge otherwise).
        devices = [run.accelerator.device] if run.accelerator.device.type == "cuda" else []
        per_prompt: list[list[float | None]] = []
        votes: list[float | None] = []
        contested_votes: list[float | None] = []  # the vote's correctness on prompts whose k answers disagree
        # Tasks whose rows carry a `kind` (question type) also get each kind's greedy accuracy and pass@k.
        kinds = sorted({str(r["kind"]) for r in run.heldout_rows if isinstance(r, dict) and "kind" in r})
        by_kind: dict[str, list[float]] = {f"{what}_{kind}": [0.0, 0.0] for kind in kinds for what in ("accuracy", "pass_at_k")}
        greedy = replace(params, n=1, greedy=True)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(run.config.train.seed * 7919 + 17)
            size = max(1, run.config.eval.batch_size // max(k, 1))
            for start in range(0, len(rows), size):
                samples = decode(rows[start : start + size])
                if not samples:
                    continue
                result = run.backend.generate(run.policy.encode_prompts(samples), samples, params)
                outputs = result.outputs if result.outputs is not None else \
                    [run.policy.vocabulary.tokenizer.decode(ids, skip_special_tokens=True) for ids in result.completion_ids]
                repeated = [s for s in samples for _ in range(k)]
                scores = _score(run.task.accuracy_reward, outputs, repeated, [list(i) for i in result.completion_ids],
                                bound=next((r for r in run.rewards if r.name == run.task.accuracy_reward), None))
                greedy_scores = None
                if kinds:
                    result = run.backend.generate(run.policy.encode_prompts(samples), samples, greedy)
                    texts = result.outputs if result.outputs is not None else \
                        [run.policy.vocabulary.tokenizer.decode(ids, skip_special_tokens=True) for ids in result.completion_ids]
                    greedy_scores = _score(run.task.accuracy_reward, texts, samples, [list(i) for i in result.completion_ids],
                                           bound=next((r for r in run.rewards if r.name == run.task.accuracy_reward), None))
                for index in range(len(samples)):
                    if start + index >= scored:
                        break
                    row_scores = scores[index * k : (index + 1) * k]
                    per_prompt.append(row_scores)
                    answers = [vote_key(str(o)) for o in outputs[index * k : (index + 1) * k]]
                    votes.append(majority_vote_correct(answers, row_scores))
                    if contested(answers):
                        contested_votes.append(votes[-1])
                    kind = str(samples[index].get("kind"))
                    if greedy_scores is not None and f"accuracy_{kind}" in by_kind:
                        if greedy_scores[index] is not None:
                            by_kind[f"accuracy_{kind}"][0] += greedy_scores[index]
                            by_kind[f"accuracy_{kind}"][1] += 1
                        present = [v for v in row_scores if v is not None]
                        if present:
                            by_kind[f"pass_at_k_{kind}"][0] += max(present)
                            by_kind[f"pass_at_k_{kind}"][1] += 1
        local = {
            "sampled_accuracy": _sum_count([s for row in per_prompt for s in row if s is not None]),
            "pass_at_k": _sum_count([max(s for s in row if s is not None) for row in per_prompt if any(s is not None for s in row)]),
            "majority_accuracy": _sum_count([v for v in votes if v is not None]),
            "contested_fraction": (float(len(contested_votes)), float(len(votes))),
            "contested_majority_accuracy": _sum_count([v for v in contested_votes if v is not None]),
            **{key: tuple(value) for key, value in by_kind.items()},
        }
        keys = sorted(local)
        totals = _all_reduce(torch.tensor([x for key in keys for x in local[key]], dtype=torch.float64))
        out = {key: (totals[2 * i] / totals[2 * i + 1]).item() if totals[2 * i + 1] > 0 else float("nan")
               for i, key in enumerate(keys)}
        out["pass_k"] = float(k)
        return out


def _with_hidden_label(sample: dict) -> dict:
    if "answer" not in sample and "hidden_answer" in sample:
        return {**sample, "answer": sample["hidden_answer"]}
    return sample


def _score(name: str, completions: Sequence, samples: Sequence[dict], completion_ids: Sequence[Sequence[int]],
           bound: Any = None) -> list[float | None]:
    """A reward by name (or the run's bound one, with its args) on completions; values as floats or None."""
    from mmpost.registry import REWARDS

    function = bound.function if bound is not None else REWARDS.get(name)
    args = dict(bound.args) if bound is not None else {}
    parameters = inspect.signature(function).parameters
    if "completion_ids" in parameters:
        args["completion_ids"] = [list(ids) for ids in completion_ids]
    if "group_ids" in parameters:
        args["group_ids"] = list(range(len(completions)))
    values = function(list(completions), list(samples), **args)
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def _sum_count(values: Sequence[float]) -> tuple[float, float]:
    return float(sum(values)), float(len(values))


def _reduce_means(metrics: dict[str, Any]) -> dict[str, float]:
    """(sum, count) pairs become means over all processes; plain floats pass through (identical on every rank or
    rank-local timings)."""
    from mmpost.update import _all_reduce

    pairs = sorted(k for k, v in metrics.items() if isinstance(v, tuple))
    out = {k: v for k, v in metrics.items() if not isinstance(v, tuple)}
    if pairs:
        totals = _all_reduce(torch.tensor([x for k in pairs for x in metrics[k]], dtype=torch.float64))
        for i, key in enumerate(pairs):
            out[key] = (totals[2 * i] / totals[2 * i + 1]).item() if totals[2 * i + 1] > 0 else float("nan")
    return out
