"""Process reward model (PROPA, official `create_RM_train_qwen_grpo.py`, `rm_train.sh`, `test/MCTS_test_intern.py`,
`test/find_best_path.py`, `test/bestN_test_intern.py`) and inference strategies built on it.

- Model: a VLM with a regression head, `Linear(hidden, 1)` on the last token's final hidden state (what
  `swift sft --task_type seq_cls --num_labels 1 --problem_type regression` trains). Saved as the backbone's own
  `save_pretrained` folder (or a PEFT adapter) plus `value_head.safetensors` and `value_head.json`.
- Data: every non-root node of a search tree, input = question + path so far, label = W/N; an unvisited node
  gets 0 and is kept only if some sibling's W/N is nonzero.
- Inference: `prm_guided_answer` (MCTS whose node values are PRM scores clamped to [0, 1]; answer = the terminal
  path with the highest mean score), `greedy_answer` and `best_of_n_answer` (per step, the PRM-best of n samples).

Ours, measured in benchmarks/propa_search.py (benchmarks/results/learning_propa_s7_search*.md): a PRM trained on
sibling contrasts (`sibling_pairs`, Bradley-Terry `pairwise_loss`, `objective="pairwise"`, read through a sigmoid),
and final-path rules besides the official mean (`PATH_RULES`: last, min, product, majority vote over the final
answers, score-weighted vote).
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from mmpost.search.mcts import (
    FINAL_ANSWER_MARKER, STEP_SYSTEM_PROMPT, Evaluator, MCTSConfig, SearchTree, clean_step, completion_values, is_terminal_step,
    path_messages, run_mcts,
)
from mmpost.types import PromptEncoding, Sample

HEAD_WEIGHTS = "value_head.safetensors"
HEAD_CONFIG = "value_head.json"


# -- the model -------------------------------------------------------------------------------------
def _hidden_size(model: torch.nn.Module) -> int:
    config = model.config
    text = getattr(config, "text_config", None)
    size = getattr(text, "hidden_size", None) or getattr(config, "hidden_size", None)
    if not size:
        raise ValueError(f"{type(model).__name__}: cannot read hidden_size from its config")
    return int(size)


OBJECTIVES = ("regression", "pairwise")


class ProcessRewardModel(torch.nn.Module):
    """A VLM backbone with a scalar head on the last token: inputs -> score [B] (unbounded output).

    `objective` says how it was trained and so how a score in [0, 1] is read from it: "regression" (official: MSE
    on W/N; the output clamped to [0, 1]) or "pairwise" (ours: Bradley-Terry on sibling contrasts; the output is a
    logit, read through a sigmoid)."""

    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Linear | None = None, objective: str = "regression") -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"process reward model: objective must be one of {OBJECTIVES}, got {objective!r}")
        self.backbone = backbone
        self.head = head if head is not None else torch.nn.Linear(_hidden_size(backbone), 1)
        self.objective = objective

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Inputs are left-padded (as `collate_prompts` pads), so the last position is every row's last token."""
        out = self.backbone(**inputs, output_hidden_states=True, use_cache=False)
        last = out.hidden_states[-1][:, -1, :]  # [B, H]
        return self.head(last.to(self.head.weight.dtype)).squeeze(-1)

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(str(folder))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(folder / HEAD_WEIGHTS))
        (folder / HEAD_CONFIG).write_text(json.dumps({"hidden_size": self.head.in_features, "outputs": 1,
                                                      "pooling": "last_token", "problem_type": self.objective}, indent=1))
        return folder


def build_prm(backbone_path: str | Path, *, lora: dict | None = None, seed: int = 0,
              objective: str = "regression") -> ProcessRewardModel:
    """A fresh PRM on a policy checkpoint; `lora` (PEFT LoraConfig kwargs) trains an adapter plus the head."""
    from mmpost.config import ModelConfig
    from mmpost.model import load_model

    backbone = load_model(ModelConfig(path=str(backbone_path)))
    if lora:
        from peft import LoraConfig, get_peft_model

        backbone = get_peft_model(backbone, LoraConfig(**{"target_modules": "all-linear", **lora,
                                                          "exclude_modules": r".*(visual|vision_tower).*"}))
    torch.manual_seed(seed)
    head = torch.nn.Linear(_hidden_size(backbone), 1)
    torch.nn.init.zeros_(head.bias)
    return ProcessRewardModel(backbone, head, objective)


def load_prm(folder: str | Path, *, base: str | Path | None = None) -> ProcessRewardModel:
    """Load a PRM saved by `ProcessRewardModel.save` (a LoRA PRM needs `base`, the backbone it was trained on)."""
    from safetensors.torch import load_file

    from mmpost.config import ModelConfig
    from mmpost.model import load_model

    folder = Path(folder)
    if not (folder / HEAD_CONFIG).is_file():
        raise FileNotFoundError(f"{folder}: not a process reward model folder (no {HEAD_CONFIG})")
    meta = json.loads((folder / HEAD_CONFIG).read_text())
    if (folder / "adapter_config.json").is_file():
        if base is None:
            raise ValueError(f"{folder}: a LoRA process reward model needs `base`, the backbone folder it adapts")
        from peft import PeftModel

        backbone = PeftModel.from_pretrained(load_model(ModelConfig(path=str(base))), str(folder))
    else:
        backbone = load_model(ModelConfig(path=str(folder)))
    head = torch.nn.Linear(int(meta["hidden_size"]), 1)
    head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
    return ProcessRewardModel(backbone, head, meta.get("problem_type", "regression"))


# -- data ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PRMExample:
    question: int  # index into the samples the trees were searched on
    steps: tuple[str, ...]
    label: float


def prm_examples(tree: SearchTree, question: int = 0) -> list[PRMExample]:
    """(question + path -> W/N) for every non-root node; an unvisited node (label 0) only if a sibling is nonzero."""
    out = []
    for index, node in enumerate(tree.nodes):
        if node.parent is None:
            continue
        if node.visits == 0:
            siblings = [tree.nodes[s].q for s in tree.nodes[node.parent].children if s != index]
            if all(q == 0.0 for q in siblings):
                continue
        out.append(PRMExample(question, tuple(tree.path(index)), node.q))
    return out


class PathEncoder:
    """Encodes (question, path) for the PRM: the task's question followed by the steps, no system turn."""

    def __init__(self, processor: Any, task: Any, modality: Any, samples: Sequence[Sample]) -> None:
        self.processor, self.task, self.modality, self.samples = processor, task, modality, list(samples)
        tokenizer = getattr(processor, "tokenizer", processor)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, question: int, steps: Sequence[str]) -> PromptEncoding:
        sample = self.samples[question]
        return self.modality.encode_prompt(self.processor, path_messages(self.task.prompt(sample), steps), sample)

    def batch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> dict[str, torch.Tensor]:
        from mmpost.types import collate_prompts

        return collate_prompts([self.encode(q, s) for q, s in requests], self.pad_id)


def prm_scores(prm: ProcessRewardModel, encoder: PathEncoder, requests: Sequence[tuple[int, Sequence[str]]],
               batch_size: int = 16) -> list[float]:
    """PRM scores in [0, 1]: a regression PRM's output clamped (the official inference clamps the parsed score), a
    pairwise PRM's logit through a sigmoid."""
    device = next(prm.parameters()).device
    was_training = prm.training
    prm.eval()
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(requests), batch_size):
            inputs = {k: v.to(device) for k, v in encoder.batch(requests[start : start + batch_size]).items()}
            raw = prm(**inputs).float()
            out += (torch.sigmoid(raw) if prm.objective == "pairwise" else raw.clamp(0.0, 1.0)).tolist()
    prm.train(was_training)
    return out


def train_prm(prm: ProcessRewardModel, encoder: PathEncoder, examples: Sequence[PRMExample], *, epochs: int = 5,
              lr: float = 1e-4, batch_size: int = 4, seed: int = 0, max_grad_norm: float = 1.0) -> list[float]:
    """Mean-squared-error regression on the labels (official: 5 epochs, lr 1e-4, batch 4); returns epoch losses."""
    if not examples:
        raise ValueError("train_prm: no examples (did every tree lack a visited non-root node?)")
    device = next(prm.parameters()).device

    def batch_loss(chunk: list[PRMExample]) -> torch.Tensor:
        inputs = {k: v.to(device) for k, v in encoder.batch([(e.question, e.steps) for e in chunk]).items()}
        labels = torch.tensor([e.label for e in chunk], dtype=torch.float32, device=device)
        return torch.nn.functional.mse_loss(prm(**inputs).float(), labels)

    return _fit(prm, examples, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                max_grad_norm=max_grad_norm)


def _fit(prm: ProcessRewardModel, items: Sequence, batch_loss, *, epochs: int, lr: float, batch_size: int, seed: int,
         max_grad_norm: float) -> list[float]:
    """AdamW over `items` in seeded shuffled batches, `batch_loss(chunk)` per batch; returns the epoch mean losses
    (one loop for the regression and the pairwise PRM)."""
    parameters = [p for p in prm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    prm.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(items), generator=generator).tolist()
        total = 0.0
        for start in range(0, len(order), batch_size):
            chunk = [items[i] for i in order[start : start + batch_size]]
            loss = batch_loss(chunk)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
            optimizer.step()
            total += loss.item() * len(chunk)
        losses.append(total / len(items))
    return losses


# -- a PRM trained on sibling contrasts (ours) -------------------------------------------------------
@dataclass(frozen=True)
class PRMPair:
    """Two children of one node: `better` has the higher MC value W/N (both visited, different texts)."""

    question: int
    better: tuple[str, ...]  # path root..child
    worse: tuple[str, ...]


def sibling_pairs(tree: SearchTree, question: int = 0) -> list[PRMPair]:
    """Every pair of a node's children whose MC values differ: copies of one step text pooled first (N and W summed,
    `merge_duplicate_children`), unvisited texts left out (their 0 is no evidence). A reconstruction (ours): the
    official PRM regresses W/N over all nodes, which measured here learns which questions and depths end right, not
    which sibling is right (benchmarks/results/learning_propa_prm_sweep.md)."""
    from mmpost.search.step_groups import merge_duplicate_children

    out = []
    for index, node in enumerate(tree.nodes):
        if node.terminal or len(node.children) < 2:
            continue
        children = node.children
        pooled = merge_duplicate_children([tree.nodes[c].step for c in children], [tree.nodes[c].visits for c in children],
                                          [tree.nodes[c].value for c in children])
        valued = [(tree.nodes[children[first]].step, w / n) for first, n, w in pooled if n > 0]
        path = tuple(tree.path(index))
        for i, (text_i, q_i) in enumerate(valued):
            for text_j, q_j in valued[i + 1 :]:
                if q_i != q_j:
                    better, worse = (text_i, text_j) if q_i > q_j else (text_j, text_i)
                    out.append(PRMPair(question, path + (better,), path + (worse,)))
    return out


def terminal_pairs(tree: SearchTree, question: int = 0) -> list[PRMPair]:
    """Every pair of one training tree's terminal nodes whose final steps differ in correctness (the node's reward):
    (path to a right final answer, path to a wrong one), each distinct pair of paths once; visited or not, since a
    terminal step's label is exact. Ours: contrasts between final answers to the same question, the choice where a
    perfect ranker gains most on the PROPA policy (benchmarks/results/learning_propa_s9_oracle.md)."""
    right, wrong = {}, {}
    for index, node in enumerate(tree.nodes):
        if node.terminal:
            (right if node.reward > 0 else wrong).setdefault(tuple(tree.path(index)), None)
    return [PRMPair(question, better, worse) for better in right for worse in wrong]


def pairwise_loss(better: torch.Tensor, worse: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: mean of -log sigmoid(s_better - s_worse) = softplus(s_worse - s_better) (Bradley & Terry 1952;
    the reward-model loss of Ouyang et al. 2022, eq. 1, one pair per comparison)."""
    return torch.nn.functional.softplus(worse - better).mean()


def train_pairwise_prm(prm: ProcessRewardModel, encoder: PathEncoder, pairs: Sequence[PRMPair], *, epochs: int = 3,
                       lr: float = 1e-3, batch_size: int = 8, seed: int = 0, max_grad_norm: float = 1.0) -> list[float]:
    """`pairwise_loss` over sibling pairs (both paths of a pair in one batch); returns the epoch losses."""
    if not pairs:
        raise ValueError("train_pairwise_prm: no sibling pairs (no node had two visited children with different W/N)")
    if prm.objective != "pairwise":
        raise ValueError(f"train_pairwise_prm: the PRM's objective is {prm.objective!r}; build it with objective='pairwise'")
    device = next(prm.parameters()).device

    def batch_loss(chunk: list[PRMPair]) -> torch.Tensor:
        requests = [(p.question, p.better) for p in chunk] + [(p.question, p.worse) for p in chunk]
        scores = prm(**{k: v.to(device) for k, v in encoder.batch(requests).items()}).float()
        return pairwise_loss(scores[: len(chunk)], scores[len(chunk) :])

    return _fit(prm, pairs, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                max_grad_norm=max_grad_norm)


# -- inference -------------------------------------------------------------------------------------
@dataclass
class SearchAnswer:
    """The chosen chain: its steps, its last step (the answer text, "" when no final answer was found), score."""

    steps: list[str]
    score: float

    @property
    def text(self) -> str:
        return self.steps[-1] if self.steps and is_terminal_step(self.steps[-1]) else ""


PATH_RULES = ("mean", "last", "min", "product", "vote", "score_vote")
"""How PRM-guided search picks its answer among the terminal paths: "mean" (official `find_best_path`: the highest
mean PRM score over root..node, the root counted with score 0), "last" (the final step's score), "min" (the weakest
step's), "product" (all steps' product), "vote" (the final answer reached by most terminal nodes, ties to the higher
mean score) and "score_vote" (the final answer whose terminal nodes' scores sum highest). All but "mean" are ours."""


def path_score(scores: Sequence[float], rule: str) -> float:
    """The score of one path from its non-root nodes' PRM scores, for "mean" (root counted as a 0: sum / (len + 1)),
    "last", "min" and "product"."""
    if not scores:
        return float("-inf")
    if rule == "mean":
        return sum(scores) / (len(scores) + 1)
    if rule == "last":
        return scores[-1]
    if rule == "min":
        return min(scores)
    if rule == "product":
        return math.prod(scores)
    raise ValueError(f"path_score: unknown rule {rule!r}; expected one of mean, last, min, product")


def final_answer_of(step: str) -> str:
    """The text after the last "the final answer is" of a terminal step (cleaned, trailing period dropped)."""
    cleaned = clean_step(step)
    if FINAL_ANSWER_MARKER not in cleaned:
        return ""
    return cleaned.rsplit(FINAL_ANSWER_MARKER, 1)[1].strip().rstrip(".").strip()


def best_terminal_path(tree: SearchTree, rule: str = "mean") -> tuple[int | None, float]:
    """The terminal node the search answers with under `rule` (`PATH_RULES`) and its score (for the votes: the
    count or the score sum of its answer); ties go to the earlier node. (None, -inf) without a terminal node."""
    if rule not in PATH_RULES:
        raise ValueError(f"best_terminal_path: unknown rule {rule!r}; expected one of {PATH_RULES}")
    terminals = [i for i, node in enumerate(tree.nodes) if node.terminal]
    path_scores = {i: path_score([tree.nodes[j].score for j in tree.path_nodes(i)[1:]],
                                 "mean" if rule in ("vote", "score_vote") else rule) for i in terminals}
    if rule in ("vote", "score_vote"):
        totals: dict[str, float] = {}
        for i in terminals:
            answer = final_answer_of(tree.nodes[i].step)
            totals[answer] = totals.get(answer, 0.0) + (1.0 if rule == "vote" else tree.nodes[i].score)
        best, best_key = None, (float("-inf"), float("-inf"))
        for i in terminals:
            key = (totals[final_answer_of(tree.nodes[i].step)], path_scores[i])
            if key > best_key:
                best, best_key = i, key
        return best, best_key[0]
    best, best_score = None, float("-inf")
    for i in terminals:
        if path_scores[i] > best_score:
            best, best_score = i, path_scores[i]
    return best, best_score


def policy_proposer(model: torch.nn.Module, processor: Any, task: Any, modality: Any, samples: Sequence[Sample], *,
                    max_new_tokens: int, temperature: float = 1.0, system_prompt: str = STEP_SYSTEM_PROMPT):
    """A `StepProposer` over HF generate for `model` (the same one the training source uses)."""
    from mmpost.policy import TokenPolicy
    from mmpost.rollout.hf import HFGenerateBackend
    from mmpost.search.source import PolicyStepProposer

    policy = TokenPolicy(model, processor, task, modality)
    backend = HFGenerateBackend(model, pad_token_id=policy.pad_token_id, eos_token_ids=policy.eos_token_ids,
                                suppressed_token_ids=policy.suppressed_token_ids)
    return PolicyStepProposer(policy, backend, samples, max_new_tokens=max_new_tokens, temperature=temperature,
                              system_prompt=system_prompt)


def value_guided_trees(proposer, evaluate: Evaluator, questions: int, *, num_children: int = 4, min_iterations: int = 25,
                       min_final_answers: int = 2, max_iterations: int = 100, exploration: float = 1.0) -> list[SearchTree]:
    """MCTS per question (all questions in lockstep) whose node values come from `evaluate` (an `Evaluator`) instead
    of rollouts: expansions sample `num_children` steps; the evaluated children (all if one is terminal, else the
    first) get their value, which is recorded as the node's `score` and backpropagated; a tree stops after
    >= `min_iterations` iterations with >= `min_final_answers` final answers seen, or at `max_iterations`.
    The trees carry no answer (rewards stay 0), as at inference."""
    trees = [SearchTree(answer=None) for _ in range(questions)]
    config = MCTSConfig(iterations=min_iterations, num_children=num_children, exploration=exploration,
                        min_final_answers=min_final_answers, max_iterations=max_iterations)

    def record(tree, node, value):
        tree.nodes[node].score = value

    run_mcts(trees, proposer, evaluate, config, on_evaluated=record)
    return trees


def prm_guided_trees(proposer, prm: ProcessRewardModel, encoder: PathEncoder, questions: int, *,
                     num_children: int = 4, min_iterations: int = 25, min_final_answers: int = 2,
                     max_iterations: int = 100, exploration: float = 1.0) -> list[SearchTree]:
    """PRM-guided MCTS (`value_guided_trees`, the official inference search): node values are the PRM's scores
    (`prm_scores`). Returns the trees (each evaluated node's `score` is its PRM score).

    `proposer`: a `StepProposer` whose question indices match `encoder.samples` (see `policy_proposer`)."""

    def evaluate(trees_, nodes):
        return prm_scores(prm, encoder, [(t, trees_[t].path(i)) for t, i in nodes])

    return value_guided_trees(proposer, evaluate, questions, num_children=num_children, min_iterations=min_iterations,
                              min_final_answers=min_final_answers, max_iterations=max_iterations, exploration=exploration)


def tree_answer(tree: SearchTree, rule: str = "mean") -> SearchAnswer:
    """The answer a PRM-guided tree gives under `rule` (`best_terminal_path`)."""
    index, score = best_terminal_path(tree, rule)
    return SearchAnswer(tree.path(index) if index is not None else [], score)


def prm_guided_answer(proposer, prm: ProcessRewardModel, encoder: PathEncoder, questions: int, *,
                      num_children: int = 4, min_iterations: int = 25, min_final_answers: int = 2,
                      max_iterations: int = 100, exploration: float = 1.0, path_rule: str = "mean") -> list[SearchAnswer]:
    """`prm_guided_trees`, then each tree's answer under `path_rule` (official: "mean", the terminal path with the
    highest mean score)."""
    trees = prm_guided_trees(proposer, prm, encoder, questions, num_children=num_children, min_iterations=min_iterations,
                             min_final_answers=min_final_answers, max_iterations=max_iterations, exploration=exploration)
    return [tree_answer(tree, path_rule) for tree in trees]


def greedy_answer(proposer, questions: int, *, max_steps: int = 20) -> list[SearchAnswer]:
    """Greedy decoding one step at a time until a final answer or `max_steps` (official greedy baseline)."""
    from mmpost.search.source import sample_chains

    chains = sample_chains(proposer, questions, 1, max_steps, greedy=True)
    return [SearchAnswer([s.text for s in steps], 0.0) for _, steps in chains]


def best_of_n_answer(proposer, prm: ProcessRewardModel, encoder: PathEncoder, questions: int, *, n: int = 4,
                     max_steps: int = 20) -> list[SearchAnswer]:
    """Step-level best-of-n (official `bestN_test_intern.py`): at each step sample n candidates, keep the one the
    PRM scores highest on question + path + candidate, stop at a final answer or `max_steps`."""
    paths: list[list[str]] = [[] for _ in range(questions)]
    scores = [0.0] * questions
    live = list(range(questions))
    for _ in range(max_steps):
        if not live:
            break
        candidates = proposer.propose([(q, paths[q]) for q in live], n, False)
        flat = [(q, paths[q] + [c.text]) for q, options in zip(live, candidates) for c in options]
        values = prm_scores(prm, encoder, flat)
        still = []
        for k, q in enumerate(live):
            block = values[k * n : (k + 1) * n]
            best = max(range(n), key=lambda j: (block[j], -j))
            paths[q] = flat[k * n + best][1]
            scores[q] = block[best]
            if not is_terminal_step(paths[q][-1]):
                still.append(q)
        live = still
    return [SearchAnswer(p, s) for p, s in zip(paths, scores)]


# -- is the PRM right about the policy's own steps? --------------------------------------------------
def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties counting 1/2
    (the Mann-Whitney U statistic divided by n_pos * n_neg). NaN when either class is empty."""
    pairs = list(zip(scores, positive))
    pos = [float(s) for s, p in pairs if p]
    neg = [float(s) for s, p in pairs if not p]
    if not pos or not neg:
        return float("nan")
    greater = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return greater / (len(pos) * len(neg))


@dataclass(frozen=True)
class StepJudgement:
    """One candidate step the policy proposed: the PRM's score and the truth of a greedy rollout from it."""

    question: int
    depth: int  # steps before the candidate (0 = the first step)
    score: float  # PRM score, clamped to [0, 1]
    right: bool  # the greedy continuation from the candidate (or the candidate itself) ends in a correct answer


def prm_ranking_metrics(judgements: Sequence[StepJudgement]) -> dict[str, float]:
    """How well the PRM ranks the policy's candidates. Over all candidates: `auc` (does a higher score mean a right
    continuation?) and `right_fraction`. Over the candidate sets (same question and depth) that mix right and wrong
    steps, the only ones where choosing matters: `pick_right` = P(the PRM's top candidate is right) against
    `random_pick_right` = the mean right fraction of those sets (what picking at random gets), and `mixed_sets`."""
    groups: dict[tuple[int, int], list[StepJudgement]] = {}
    for judgement in judgements:
        groups.setdefault((judgement.question, judgement.depth), []).append(judgement)
    mixed = [g for g in groups.values() if any(j.right for j in g) and not all(j.right for j in g)]
    nan = float("nan")
    # per mixed set: (top pick right) - (its right fraction); the SE of their mean says whether the PRM beats chance
    lifts = [float(max(g, key=lambda j: j.score).right) - sum(j.right for j in g) / len(g) for g in mixed]
    lift_se = (statistics.stdev(lifts) / math.sqrt(len(lifts))) if len(lifts) > 1 else nan
    return {
        "auc": roc_auc([j.score for j in judgements], [j.right for j in judgements]),
        "right_fraction": sum(j.right for j in judgements) / len(judgements) if judgements else nan,
        "pick_right": sum(max(g, key=lambda j: j.score).right for g in mixed) / len(mixed) if mixed else nan,
        "random_pick_right": sum(sum(j.right for j in g) / len(g) for g in mixed) / len(mixed) if mixed else nan,
        "pick_lift": statistics.mean(lifts) if lifts else nan,
        "pick_lift_se": lift_se,
        "mixed_sets": float(len(mixed)),
        "candidates": float(len(judgements)),
    }


@dataclass(frozen=True)
class CandidateStep:
    """A candidate step the policy proposed at `depth` of question `question`'s greedy chain, with its path and
    whether a greedy rollout from it (or the candidate itself, if terminal) ends in a correct answer."""

    question: int
    depth: int
    path: tuple[str, ...]
    right: bool


def candidate_steps(proposer, answers: Sequence[str], *, k: int = 4, depths: Sequence[int] = (0, 1),
                    max_steps: int = 6) -> list[CandidateStep]:
    """The policy's own candidates: for each question (answers[q] its answer), along its greedy chain, at each depth
    d in `depths` the policy samples k next steps (the proposer's temperature, as the search expands); each is
    labelled by a greedy rollout from it (as MCTS simulates; a terminal candidate by its own correctness)."""
    from mmpost.search.source import sample_chains

    questions = len(answers)
    greedy = [[s.text for s in steps] for _, steps in sample_chains(proposer, questions, 1, max(depths) + 1, greedy=True)]
    starts = [(q, greedy[q][:d], d) for d in depths for q in range(questions)
              if len(greedy[q]) >= d and not any(is_terminal_step(s) for s in greedy[q][:d])]
    if not starts:
        return []
    candidates = proposer.propose([(q, prefix) for q, prefix, _ in starts], k, False)
    paths = [(q, prefix + [c.text], d) for (q, prefix, d), options in zip(starts, candidates) for c in options]
    values = completion_values(proposer, [(q, path) for q, path, _ in paths], [answers[q] for q, _, _ in paths],
                               max_depth=max_steps)  # one greedy rollout each, all advancing together
    right = [v == 1.0 for v in values]
    return [CandidateStep(q, d, tuple(path), r) for (q, path, d), r in zip(paths, right)]


def judge_candidates(prm: ProcessRewardModel, encoder: PathEncoder, candidates: Sequence[CandidateStep]) -> list[StepJudgement]:
    """Each candidate's PRM score on question + path."""
    scores = prm_scores(prm, encoder, [(c.question, c.path) for c in candidates])
    return [StepJudgement(c.question, c.depth, score, c.right) for c, score in zip(candidates, scores)]


def prm_step_judgements(proposer, prm: ProcessRewardModel, encoder: PathEncoder, questions: int, *, k: int = 4,
                        depths: Sequence[int] = (0, 1), max_steps: int = 6) -> list[StepJudgement]:
    """The PRM judged on the policy's own candidates (`candidate_steps`, then `judge_candidates`). `proposer` and
    `encoder` must index the same samples, which carry `answer`."""
    answers = [str(s["answer"]) for s in encoder.samples[:questions]]
    return judge_candidates(prm, encoder, candidate_steps(proposer, answers, k=k, depths=depths, max_steps=max_steps))


# -- how much a perfect ranker could gain among siblings (diagnostic; the values use the answers) ---------------
def _average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, tied values sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in order[start : end + 1]:
            ranks[position] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); NaN when either side is constant."""
    rx, ry = _average_ranks(x), _average_ranks(y)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    nan = float("nan")
    if not values:
        return nan, nan
    return statistics.mean(values), (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else nan)


def sibling_value_metrics(sets: Sequence[tuple[Sequence[float], Sequence[float], Sequence[float]]]) -> dict[str, float]:
    """The headroom of choosing among sibling candidate steps. Each set is one node's candidates as (values from one
    half of the Monte-Carlo completions, values from the other half, a ranker's scores); a candidate's value is the
    mean of its two halves.

    - `differ`: share of sets whose values are not all equal (the only sets where choosing can matter);
    - `random_value`: mean candidate value (a random pick), `best_value_naive`: the highest value (biased up: the
      highest of noisy estimates), `best_gap_naive` = their difference;
    - `best_gap` (± `best_gap_se`): cross-fitted, so the estimate's noise does not pick itself: pick the best by one
      half, score the pick and a random pick by the other, both ways round, averaged (a ranker as good as N/2
      completions; biased down);
    - `ranker_gap` (± `ranker_gap_se`): value of the ranker's top pick (first of ties) − the set's mean value;
    - over the sets that differ: `agreement` (the ranker's top pick has the highest value) against `chance_agreement`
      (the share of candidates that do), and `spearman` (mean rank correlation of scores and values, over the sets
      whose scores also differ; `spearman_sets` counts them)."""
    full = [[(a + b) / 2 for a, b in zip(first, second)] for first, second, _ in sets]

    def cross(pick: Sequence[float], judge: Sequence[float]) -> float:
        best = max(range(len(pick)), key=lambda i: pick[i])
        return judge[best] - statistics.mean(judge)

    best_gaps = [(cross(first, second) + cross(second, first)) / 2 for first, second, _ in sets]
    tops = [max(range(len(scores)), key=lambda i: scores[i]) for _, _, scores in sets]
    ranker_gaps = [values[top] - statistics.mean(values) for values, top in zip(full, tops)]
    differing = [i for i, values in enumerate(full) if max(values) > min(values)]
    agreement = [float(full[i][tops[i]] == max(full[i])) for i in differing]
    chance = [sum(v == max(full[i]) for v in full[i]) / len(full[i]) for i in differing]
    correlations = [spearman(sets[i][2], full[i]) for i in differing]
    correlations = [c for c in correlations if not math.isnan(c)]
    best_gap, best_gap_se = _mean_se(best_gaps)
    ranker_gap, ranker_gap_se = _mean_se(ranker_gaps)
    nan = float("nan")
    return {
        "sets": float(len(sets)),
        "differ": len(differing) / len(sets) if sets else nan,
        "random_value": statistics.mean(statistics.mean(v) for v in full) if sets else nan,
        "best_value_naive": statistics.mean(max(v) for v in full) if sets else nan,
        "best_gap_naive": statistics.mean(max(v) - statistics.mean(v) for v in full) if sets else nan,
        "best_gap": best_gap, "best_gap_se": best_gap_se,
        "ranker_gap": ranker_gap, "ranker_gap_se": ranker_gap_se,
        "agreement": statistics.mean(agreement) if agreement else nan,
        "chance_agreement": statistics.mean(chance) if chance else nan,
        "spearman": statistics.mean(correlations) if correlations else nan,
        "spearman_sets": float(len(correlations)),
    }
