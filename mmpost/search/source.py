"""Experience sources built on step-wise search, and the reward that reads their stored labels.

- "propa" (PROPA, arXiv 2511.10279): per round, MCTS on the step's questions with the current policy; the
  step-level GRPO groups of the trees become policy rows, and questions whose tree never reached a correct
  answer become SFT rows on their reference chain (interleaved SFT), all in one engine step.
- "step_sft": SFT on reference chains in the step format (the warm start PROPA assumes).
- "step_outcome_grpo": the outcome-reward baseline in the same step format: G chains sampled step by step per
  question, every step of a chain labelled with the chain's final correctness, grouped by question.

Rows are (prompt of the path so far, one step); each row has its own sample (the question's sample plus
`propa_steps` and `propa_step_label`), so the registered reward "propa_step_label" scores rows through the
normal scoring path. Nothing here knows a modality: prompts come from the task's `prompt` plus the step
format, and are encoded by the run's modality.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from mmpost.experience import BatchBuilder, ExperienceSource, Row, StepContext
from mmpost.registry import EXPERIENCE_SOURCES, REWARDS
from mmpost.rollout.base import SamplingParams
from mmpost.search.mcts import (
    STEP_SYSTEM_PROMPT, GeneratedStep, MCTSConfig, SearchTree, is_correct_step, is_terminal_step, rollout_evaluator, run_mcts, step_messages,
)
from mmpost.experience import RowKind
from mmpost.search.step_groups import DUPLICATE_STEPS, MIN_LABEL_SPREAD, needs_demonstration, step_groups
from mmpost.types import PromptEncoding, Sample

STEPS_FIELD = "propa_steps"
LABEL_FIELD = "propa_step_label"
REFERENCE_FIELD = "steps"  # the task's reference chain: a list of step strings


class PolicyStepProposer:
    """A `StepProposer` over the rollout backend: (question index, steps) -> k next steps, one batched call.

    Encodings are cached per (question, path), so the rows built later reuse the expansion's prompt.
    """

    def __init__(self, policy: Any, backend: Any, samples: Sequence[Sample], *, max_new_tokens: int,
                 temperature: float = 1.0, system_prompt: str = STEP_SYSTEM_PROMPT) -> None:
        self.policy = policy
        self.backend = backend
        self.samples = list(samples)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.system_prompt = system_prompt
        self._cache: dict[tuple[int, tuple[str, ...]], PromptEncoding] = {}
        self.calls = 0

    def encode(self, question: int, steps: Sequence[str]) -> PromptEncoding:
        key = (question, tuple(steps))
        if key not in self._cache:
            sample = self.samples[question]
            messages = step_messages(self.policy.task.prompt(sample), steps, system_prompt=self.system_prompt)
            self._cache[key] = self.policy.modality.encode_prompt(self.policy.processor, messages, sample)
        return self._cache[key]

    def propose(self, requests, n, greedy):
        prompts = [self.encode(q, steps) for q, steps in requests]
        params = SamplingParams(n=n, temperature=self.temperature, max_new_tokens=self.max_new_tokens, greedy=greedy)
        result = self.backend.generate(prompts, [self.samples[q] for q, _ in requests], params)
        self.calls += 1
        tokenizer = self.policy.tokenizer
        out = []
        for i in range(len(requests)):
            ids = [list(result.completion_ids[i * n + j]) for j in range(n)]
            out.append([GeneratedStep(tokenizer.decode(t, skip_special_tokens=True).strip(), t) for t in ids])
        return out


def row_sample(sample: Sample, steps: Sequence[str], label: float | None = None) -> Sample:
    row = {**sample, STEPS_FIELD: list(steps)}
    if label is not None:
        row[LABEL_FIELD] = float(label)
    return row


def reference_steps(sample: Sample) -> list[str]:
    steps = sample.get(REFERENCE_FIELD)
    if not isinstance(steps, (list, tuple)) or not steps or not all(isinstance(s, str) for s in steps):
        raise ValueError(f"sample {sample.get('id', '?')!r}: field '{REFERENCE_FIELD}' must be a non-empty list of "
                         f"step strings (the reference chain for step-format SFT), got {steps!r:.120}")
    return list(steps)


class _Rows:
    """Rows with one sample and one prompt each (prompt encodings are shared objects, not copies)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.prompts: list[PromptEncoding] = []
        self.rows: list[Row] = []

    def add(self, sample: Sample, prompt: PromptEncoding, tokens: Sequence[int], group: int, *, source: str,
            is_sft: bool, keep: bool = True) -> None:
        self.samples.append(sample)
        self.prompts.append(prompt)
        self.rows.append(Row(len(self.samples) - 1, group, list(tokens), source, is_sft, keep))

    def demonstrations(self, ctx: StepContext, proposer: PolicyStepProposer, question: int, group_start: int) -> int:
        """One SFT row per reference step (prompt: the reference steps before it); returns the next group id."""
        sample = proposer.samples[question]
        steps = reference_steps(sample)
        for j, step in enumerate(steps):
            self.add(row_sample(sample, steps[:j]), proposer.encode(question, steps[:j]), ctx.policy.encode_target(step),
                     group_start + j, source=RowKind.EXPERT, is_sft=True)
        return group_start + len(steps)

    def build(self, ctx: StepContext):
        builder = BatchBuilder(self.samples, self.prompts, list(self.rows))
        return builder.build(ctx)


def _proposer(ctx: StepContext, samples: Sequence[Sample], max_new_tokens: int | None, system_prompt: str) -> PolicyStepProposer:
    return PolicyStepProposer(ctx.policy, ctx.backend, samples, max_new_tokens=max_new_tokens or ctx.sampling.max_new_tokens,
                              temperature=ctx.sampling.temperature, system_prompt=system_prompt)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@EXPERIENCE_SOURCES.register("propa")
class PropaSource(ExperienceSource):
    """PROPA's round: MCTS per question -> step-level GRPO groups + interleaved SFT on unsolved questions.

    Options (official values as defaults): `iterations` 25, `num_children` k = 4, `exploration` c = 1.0,
    `max_depth` 8 (simulation length), `min_spread` 0.1 (group filter), `duplicate_steps` ("keep", official; "merge",
"pool" or "drop" repeated step texts in a group, ours: `mmpost.search.step_groups`), `step_max_new_tokens` (None = the
    rollout's max_new_tokens; official 128), `interleaved_sft` (True), `tree_dir` (write each round's trees as
    JSON lines there, the data a process reward model trains on; None = do not write), `system_prompt` (the
    official step instruction; "" = no system turn, which the CPU presets use to keep prompts short).

    The search draws only from torch's global generator through the rollout backend, in a fixed order, so a
    round is a function of the weights, the questions and the RNG state the engine checkpoints: a run resumed
    from a checkpoint repeats the interrupted round's search exactly.
    """

    groups_from_num_generations = False  # groups are search-tree siblings or sampled chains

    def __init__(self, iterations: int = 25, num_children: int = 4, exploration: float = 1.0, max_depth: int = 8,
                 min_spread: float = MIN_LABEL_SPREAD, step_max_new_tokens: int | None = None,
                 interleaved_sft: bool = True, tree_dir: str | None = None, system_prompt: str = STEP_SYSTEM_PROMPT,
                 duplicate_steps: str = "keep") -> None:
        if duplicate_steps not in DUPLICATE_STEPS:
            raise ValueError(f"propa: duplicate_steps must be one of {DUPLICATE_STEPS}, got {duplicate_steps!r}")
        self.duplicate_steps = duplicate_steps
        self.search = MCTSConfig(iterations=iterations, num_children=num_children, exploration=exploration)
        if max_depth < 1:
            raise ValueError(f"propa: max_depth must be >= 1, got {max_depth}")
        self.max_depth = max_depth
        self.min_spread = min_spread
        self.step_max_new_tokens = step_max_new_tokens
        self.interleaved_sft = interleaved_sft
        self.tree_dir = tree_dir
        self.system_prompt = system_prompt
        self._stats: dict[str, float] = {}

    def search_trees(self, ctx: StepContext, samples: Sequence[Sample]) -> tuple[list[SearchTree], PolicyStepProposer]:
        proposer = _proposer(ctx, samples, self.step_max_new_tokens, self.system_prompt)
        trees = [SearchTree(answer=str(s["answer"])) for s in samples]
        run_mcts(trees, proposer, rollout_evaluator(proposer, self.max_depth), self.search)
        return trees, proposer

    def collect(self, ctx, samples, prompts):
        trees, proposer = self.search_trees(ctx, samples)
        rows = _Rows()
        group = 0
        groups_total = sft_questions = 0
        for q, tree in enumerate(trees):
            for g in step_groups(tree, min_spread=self.min_spread, duplicate_steps=self.duplicate_steps):
                prompt = proposer.encode(q, g.steps)
                for child, label in zip(g.children, g.labels):
                    rows.add(row_sample(samples[q], g.steps, label), prompt, tree.nodes[child].tokens, group,
                             source=RowKind.POLICY, is_sft=False)
                group += 1
                groups_total += 1
        if self.interleaved_sft:
            for q, tree in enumerate(trees):
                if needs_demonstration(tree):
                    group = rows.demonstrations(ctx, proposer, q, group)
                    sft_questions += 1
        if not rows.rows:
            # Nothing to learn this round: one row keeps the batch well-formed but is kept out of the update
            # (keep=False), and the engine skips the optimizer step when no process has a row to train.
            first = trees[0].root.children[0]
            rows.add(row_sample(samples[0], [], 0.0), proposer.encode(0, []), trees[0].nodes[first].tokens, group,
                     source=RowKind.POLICY, is_sft=False, keep=False)
        self._stats = {
            "propa/groups": float(groups_total),
            "propa/sft_questions": float(sft_questions),
            "propa/solved_fraction": sum(t.root.value > 0 for t in trees) / max(len(trees), 1),
            "propa/root_value": sum(t.root.q for t in trees) / max(len(trees), 1),
            "propa/nodes": float(sum(len(t.nodes) for t in trees)),
            "propa/generate_calls": float(proposer.calls),
        }
        if self.tree_dir:
            save_trees(Path(self.tree_dir) / f"round_{ctx.step:05d}_rank{_rank()}.jsonl", trees, samples)
        return rows.build(ctx)

    def after_rewards(self, ctx, batch):
        return batch, dict(self._stats)


@EXPERIENCE_SOURCES.register("step_sft")
class StepSFT(ExperienceSource):
    """SFT on each question's reference chain in the step format: one row per (steps so far -> next step)."""

    groups_from_num_generations = False  # groups are search-tree siblings or sampled chains

    def __init__(self, system_prompt: str = STEP_SYSTEM_PROMPT) -> None:
        self.system_prompt = system_prompt

    def collect(self, ctx, samples, prompts):
        proposer = _proposer(ctx, samples, None, self.system_prompt)
        rows = _Rows()
        group = 0
        for q in range(len(samples)):
            group = rows.demonstrations(ctx, proposer, q, group)
        return rows.build(ctx)


@EXPERIENCE_SOURCES.register("step_outcome_grpo")
class StepOutcomeGRPO(ExperienceSource):
    """Outcome-reward GRPO in the step format (the comparison PROPA is measured against): per question,
    `num_chains` chains are sampled step by step (up to `max_depth` steps); every step of a chain is a row whose
    label is 1 if the chain ends in a correct final answer, else 0; a question's rows form one group.

    A group's GRPO statistics are over its rows, so a longer chain weighs more in the group mean than a short
    one (the official RFT baselines score single whole-answer completions instead)."""

    groups_from_num_generations = False  # groups are search-tree siblings or sampled chains

    def __init__(self, num_chains: int = 4, max_depth: int = 8, step_max_new_tokens: int | None = None,
                 system_prompt: str = STEP_SYSTEM_PROMPT) -> None:
        self.system_prompt = system_prompt
        self.num_chains = num_chains
        self.max_depth = max_depth
        self.step_max_new_tokens = step_max_new_tokens
        self._stats: dict[str, float] = {}

    def collect(self, ctx, samples, prompts):
        proposer = _proposer(ctx, samples, self.step_max_new_tokens, self.system_prompt)
        chains = sample_chains(proposer, len(samples), self.num_chains, self.max_depth)
        rows = _Rows()
        correct = 0
        for chain_index, (q, steps) in enumerate(chains):
            reward = 1.0 if steps and is_correct_step(steps[-1].text, str(samples[q]["answer"])) else 0.0
            correct += int(reward)
            texts = [s.text for s in steps]
            for j, step in enumerate(steps):
                rows.add(row_sample(samples[q], texts[:j], reward), proposer.encode(q, texts[:j]), step.tokens, q,
                         source=RowKind.POLICY, is_sft=False)
        self._stats = {"propa/chain_accuracy": correct / max(len(chains), 1)}
        return rows.build(ctx)

    def after_rewards(self, ctx, batch):
        return batch, dict(self._stats)


def sample_chains(proposer: PolicyStepProposer, questions: int, chains_per_question: int, max_depth: int,
                  greedy: bool = False) -> list[tuple[int, list[GeneratedStep]]]:
    """Step-by-step chains, all advancing together: [(question index, steps)], question-major.

    A chain ends at a terminal step or after `max_depth` steps."""
    chains: list[tuple[int, list[GeneratedStep]]] = [(q, []) for q in range(questions) for _ in range(chains_per_question)]
    live = list(range(len(chains)))
    for _ in range(max_depth):
        if not live:
            break
        steps = proposer.propose([(chains[c][0], [s.text for s in chains[c][1]]) for c in live], 1, greedy)
        still = []
        for c, (step, *_) in zip(live, steps):
            chains[c][1].append(step)
            if not is_terminal_step(step.text):
                still.append(c)
        live = still
    return chains


@REWARDS.register("propa_step_label")
def propa_step_label(completions: Sequence[str], samples: Sequence[Sample]) -> list[float | None]:
    """The label the search stored on the row (PROPA's log-boosted W/N, or a chain's outcome); None for rows
    without one (demonstrations)."""
    return [None if LABEL_FIELD not in s else float(s[LABEL_FIELD]) for s in samples]


def save_trees(path: Path, trees: Sequence[SearchTree], samples: Sequence[Sample]) -> None:
    """One JSON line per tree: the sample id, its answer and the nodes (written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".partial")
    with staging.open("w") as handle:
        for tree, sample in zip(trees, samples):
            handle.write(json.dumps({"id": sample.get("id"), "tree": tree.to_dict()}) + "\n")
    os.replace(staging, path)


def load_trees(path: str | os.PathLike) -> list[tuple[str, SearchTree]]:
    """(sample id, tree) pairs from a file written by `save_trees`."""
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            out.append((record["id"], SearchTree.from_dict(record["tree"])))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a search tree record: {error}") from error
    return out
