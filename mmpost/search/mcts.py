"""Monte-Carlo tree search over reasoning steps (PROPA, Jiang et al. 2025, arXiv 2511.10279; official
`run_MCTS_train_qwen_grpo.py` and `test/MCTS_test_intern.py`).

A node is one reasoning step; the root is the question. The search is modality-agnostic: it sees steps as
text (plus the token ids they were sampled as) and asks a `StepProposer` for new steps, so any policy that
can continue "question + existing steps" fits. Many trees (one per question) are searched in lockstep, so
each expansion and each simulation depth is one batched generation call over all trees.

Step format (official system prompt and user templates):
- user text: `"{question} First step:"` at the root, else `"{question} Existing steps: {s_1 ... s_k} Next step:"`
  (steps joined by one space);
- terminal: the lowercased step contains "the final answer is";
- correct: terminal and it contains `"the final answer is {answer}"` (lowercase, `\\(` `\\)` removed). As in the
  official check this is a substring test, so answer "1" also matches "the final answer is 12".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from mmpost.types import Message

STEP_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The input by user may include some existing steps to solve the "
    "question and the Assistant should continue to derive only the next step based on these existing steps. If the "
    "input does not provide any existing steps, the Assistant need to analyze the problem and then give the first "
    "step in solving the problem. If the Assistant think it has reached the final step, provide the final answer "
    "number following the format 'The final answer is ...', otherwise continue to the next inference step."
)
FINAL_ANSWER_MARKER = "the final answer is"


# -- step format -----------------------------------------------------------------------------------
def clean_step(text: str) -> str:
    """Lowercase, stripped, LaTeX inline delimiters `\\(` `\\)` removed (the official normalisation)."""
    return text.replace("\\(", "").replace("\\)", "").strip().lower()


def is_terminal_step(text: str) -> bool:
    return FINAL_ANSWER_MARKER in clean_step(text)


def is_correct_step(text: str, answer: str) -> bool:
    """Terminal and containing "the final answer is {answer}" (case-insensitive substring, as official)."""
    cleaned = clean_step(text)
    return FINAL_ANSWER_MARKER in cleaned and f"{FINAL_ANSWER_MARKER} {str(answer).strip().lower()}" in cleaned


def step_user_suffix(steps: Sequence[str]) -> str:
    """What follows the question in the user turn: " First step:" or " Existing steps: ... Next step:"."""
    if not steps:
        return " First step:"
    return f" Existing steps: {' '.join(steps)} Next step:"


def _append_to_last_text(messages: Sequence[Message], suffix: str) -> list[Message]:
    """A copy of `messages` whose last user text part ends with `suffix` (a text part is added if none)."""
    out = [dict(m) for m in messages]
    for message in reversed(out):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = content + suffix
            return out
        parts = [dict(p) for p in (content or [])]
        for part in reversed(parts):
            if part.get("type") == "text" or ("text" in part and "image" not in part):
                part["text"] = part.get("text", "") + suffix
                message["content"] = parts
                return out
        message["content"] = parts + [{"type": "text", "text": suffix.lstrip()}]
        return out
    raise ValueError("step prompt: the task's prompt has no user message to append the steps to")


def step_messages(question_messages: Sequence[Message], steps: Sequence[str], *,
                  system_prompt: str | None = STEP_SYSTEM_PROMPT) -> list[Message]:
    """The policy's chat for the next step: the step system prompt ("" or None: no system turn), then the
    task's question with the steps."""
    messages = _append_to_last_text([m for m in question_messages if m.get("role") != "system"], step_user_suffix(steps))
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + messages


def path_messages(question_messages: Sequence[Message], steps: Sequence[str]) -> list[Message]:
    """The process reward model's input: the question followed by the path so far (official `question + path`)."""
    suffix = (" " + " ".join(steps)) if steps else ""
    return _append_to_last_text([m for m in question_messages if m.get("role") != "system"], suffix)


# -- the tree --------------------------------------------------------------------------------------
@dataclass
class Node:
    """One step. `visits` N and `value` W are MCTS statistics; `reward` is 1 for a correct final step."""

    step: str
    parent: int | None
    depth: int  # steps on the path root -> node (root 0)
    tokens: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    visits: int = 0
    value: float = 0.0
    reward: float = 0.0
    terminal: bool = False
    score: float = 0.0  # the process reward model's score (PRM-guided search)

    @property
    def expanded(self) -> bool:
        return bool(self.children)

    @property
    def q(self) -> float:
        """Mean value W/N, 0 when unvisited (the official label convention)."""
        return self.value / self.visits if self.visits else 0.0


@dataclass
class SearchTree:
    """A search over one question; `nodes[0]` is the root."""

    answer: str | None = None  # None at inference: correctness unknown, every reward stays 0
    nodes: list[Node] = field(default_factory=lambda: [Node(step="", parent=None, depth=0)])
    final_answers: int = 0  # terminal children created so far (the inference stopping rule counts them)

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def path(self, index: int) -> list[str]:
        """Step texts from the root's first child down to `index` (the root's own text excluded)."""
        steps = []
        while index is not None and self.nodes[index].parent is not None:
            steps.append(self.nodes[index].step)
            index = self.nodes[index].parent
        return steps[::-1]

    def path_nodes(self, index: int) -> list[int]:
        """Node indices root ... index."""
        out = []
        while index is not None:
            out.append(index)
            index = self.nodes[index].parent
        return out[::-1]

    def add_child(self, parent: int, step: str, tokens: Sequence[int] = ()) -> int:
        terminal = is_terminal_step(step)
        reward = 1.0 if (terminal and self.answer is not None and is_correct_step(step, self.answer)) else 0.0
        node = Node(step=step, parent=parent, depth=self.nodes[parent].depth + 1, tokens=list(tokens),
                    reward=reward, terminal=terminal)
        self.nodes.append(node)
        self.nodes[parent].children.append(len(self.nodes) - 1)
        self.final_answers += int(terminal)
        return len(self.nodes) - 1

    def to_dict(self) -> dict:
        return {"answer": self.answer, "final_answers": self.final_answers,
                "nodes": [dict(step=n.step, parent=n.parent, depth=n.depth, tokens=n.tokens, children=n.children,
                               visits=n.visits, value=n.value, reward=n.reward, terminal=n.terminal, score=n.score)
                          for n in self.nodes]}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchTree":
        return cls(answer=data.get("answer"), final_answers=int(data.get("final_answers", 0)),
                   nodes=[Node(**n) for n in data["nodes"]])


# -- the four phases -------------------------------------------------------------------------------
def uct_score(parent_visits: int, child_visits: int, child_value: float, c: float = 1.0) -> float:
    """UCT = W/N + c * sqrt(2 ln N_parent / N), +inf for an unvisited child (official `ucb_score`)."""
    if child_visits == 0:
        return math.inf
    return child_value / child_visits + c * math.sqrt(2.0 * math.log(parent_visits) / child_visits)


def select_leaf(tree: SearchTree, c: float = 1.0) -> int:
    """Descend by UCT from the root until a node that is terminal or has no children.

    Ties go to the first child in order (the official loop keeps the first strict maximum), so unvisited
    children are tried in the order they were sampled.
    """
    index = 0
    while tree.nodes[index].expanded and not tree.nodes[index].terminal:
        parent = tree.nodes[index]
        best, best_score = parent.children[0], -math.inf
        for child in parent.children:
            score = uct_score(parent.visits, tree.nodes[child].visits, tree.nodes[child].value, c)
            if score > best_score:
                best, best_score = child, score
        index = best
    return index


def backpropagate(tree: SearchTree, index: int, reward: float) -> None:
    """N += 1 and W += reward on `index` and every ancestor."""
    while index is not None:
        node = tree.nodes[index]
        node.visits += 1
        node.value += reward
        index = node.parent


def children_to_evaluate(tree: SearchTree, parent: int) -> list[int]:
    """All children when any is terminal, else only the first (official `expand`'s return value)."""
    children = tree.nodes[parent].children
    return list(children) if any(tree.nodes[c].terminal for c in children) else children[:1]


# -- policies and evaluators -----------------------------------------------------------------------
@dataclass
class GeneratedStep:
    text: str
    tokens: list[int] = field(default_factory=list)


class StepProposer(Protocol):
    """Continues a question's reasoning: for each (tree index, steps so far), `n` next steps."""

    def propose(self, requests: Sequence[tuple[int, Sequence[str]]], n: int, greedy: bool) -> list[list[GeneratedStep]]: ...


Evaluator = Callable[[Sequence[SearchTree], Sequence[tuple[int, int]]], list[float]]
"""(trees, [(tree index, node index)]) -> one value per node, backpropagated from that node."""


def completion_values(proposer: StepProposer, requests: Sequence[tuple[int, Sequence[str]]],
                      answers: Sequence[str | None], *, completions: int = 1, greedy: bool = True,
                      max_depth: int = 8) -> list[float]:
    """For each request (question index, path ending in the step to value): the share of `completions` continuations
    of the path that end in a correct final answer (`answers[i]` is request i's answer; None counts every ending
    wrong). A path whose last step is terminal is its own ending (1 or 0, nothing generated); a continuation appends
    steps until one is terminal or the path holds `max_depth` steps (then it counts wrong). Greedy continuations are
    deterministic, so `completions` must be 1; sampled ones draw `completions` first steps per path in one batched
    call (the proposer's temperature), then one step per live continuation per depth, all requests together."""
    if greedy and completions != 1:
        raise ValueError(f"completion_values: greedy continuations are all the same; completions must be 1, got {completions}")
    if completions < 1:
        raise ValueError(f"completion_values: completions must be >= 1, got {completions}")
    hits = [0] * len(requests)
    live: list[tuple[int, list[str]]] = []  # (position in `requests`, path so far)
    for position, ((_, path), answer) in enumerate(zip(requests, answers, strict=True)):
        path = list(path)
        if path and is_terminal_step(path[-1]):
            hits[position] = completions * int(answer is not None and is_correct_step(path[-1], answer))
        elif len(path) < max_depth:
            live.append((position, path))
    draws = completions  # the first call draws every continuation's first step; later calls continue each one
    while live:
        proposals = proposer.propose([(requests[p][0], path) for p, path in live], draws, greedy)
        still = []
        for (position, path), options in zip(live, proposals):
            for step in options:
                if is_terminal_step(step.text):
                    answer = answers[position]
                    hits[position] += int(answer is not None and is_correct_step(step.text, answer))
                elif len(path) + 1 < max_depth:
                    still.append((position, path + [step.text]))
        live, draws = still, 1
    return [h / completions for h in hits]


def rollout_evaluator(proposer: StepProposer, max_depth: int = 8) -> Evaluator:
    """Simulation by greedy continuation (official `simulate`): a terminal node's value is its reward; otherwise
    greedy steps are appended until one is terminal or the path holds `max_depth` steps; the value is 1 if the
    last step is a correct final answer, else 0. Simulated steps are not added to the tree. All live
    simulations of all trees advance together, one batched greedy call per depth (`completion_values`)."""

    def evaluate(trees: Sequence[SearchTree], nodes: Sequence[tuple[int, int]]) -> list[float]:
        return completion_values(proposer, [(t, trees[t].path(i)) for t, i in nodes],
                                 [trees[t].answer for t, _ in nodes], max_depth=max_depth)

    return evaluate


class MonteCarloValues:
    """An `Evaluator` that knows the answers: a node's value is `completion_values` over `completions` sampled
    continuations from the policy (the proposer's temperature), each scored against the tree's answer; a terminal
    node's value is its correctness. A diagnostic bound (it uses the labels), never an inference method: it stands in
    for a perfect process reward model. Values are kept per (tree, path), so a step text sampled twice at one node
    is estimated once; `values` holds them."""

    def __init__(self, proposer: StepProposer, answers: Sequence[str], *, completions: int, max_depth: int = 8) -> None:
        self.proposer, self.answers = proposer, list(answers)
        self.completions, self.max_depth = completions, max_depth
        self.values: dict[tuple[int, tuple[str, ...]], float] = {}

    def __call__(self, trees: Sequence[SearchTree], nodes: Sequence[tuple[int, int]]) -> list[float]:
        keys = [(t, tuple(trees[t].path(i))) for t, i in nodes]
        new = list(dict.fromkeys(k for k in keys if k not in self.values))
        estimates = completion_values(self.proposer, new, [self.answers[t] for t, _ in new],
                                      completions=self.completions, greedy=False, max_depth=self.max_depth)
        self.values.update(zip(new, estimates))
        return [self.values[k] for k in keys]


@dataclass
class MCTSConfig:
    """Official training values: 25 iterations, k = 4, c = 1.0. Inference (PRM-guided) uses
    min_iterations 25, min_final_answers 2, max_iterations 100."""

    iterations: int = 25  # at least this many iterations per tree
    num_children: int = 4  # k: steps sampled per expansion
    exploration: float = 1.0  # c in UCT
    min_final_answers: int = 0  # keep searching a tree until it has produced this many terminal children ...
    max_iterations: int | None = None  # ... but never beyond this many iterations (None = `iterations`)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.num_children < 1:
            raise ValueError(f"MCTS: iterations ({self.iterations}) and num_children ({self.num_children}) must be >= 1")
        if self.max_iterations is not None and self.max_iterations < self.iterations:
            raise ValueError(f"MCTS: max_iterations ({self.max_iterations}) must be >= iterations ({self.iterations})")


def tree_done(tree: SearchTree, iteration: int, config: MCTSConfig) -> bool:
    cap = config.max_iterations if config.max_iterations is not None else config.iterations
    if iteration >= cap:
        return True
    return iteration >= config.iterations and tree.final_answers >= config.min_final_answers


def run_mcts(trees: Sequence[SearchTree], proposer: StepProposer, evaluate: Evaluator, config: MCTSConfig,
             on_evaluated: Callable[[SearchTree, int, float], None] | None = None) -> list[int]:
    """Search all `trees` in lockstep; returns the iterations each tree ran.

    One iteration of a tree: select a leaf by UCT; if it is terminal or already expanded, backpropagate its
    own reward; otherwise sample k children in one batched call, evaluate the children chosen by
    `children_to_evaluate` and backpropagate each value from its child. `on_evaluated(tree, node, value)` lets
    a caller record the values (PRM scores).
    """
    iterations = [0] * len(trees)
    while True:
        active = [t for t, tree in enumerate(trees) if not tree_done(tree, iterations[t], config)]
        if not active:
            return iterations
        to_expand: list[tuple[int, int]] = []
        for t in active:
            leaf = select_leaf(trees[t], config.exploration)
            node = trees[t].nodes[leaf]
            if node.terminal or node.expanded:
                backpropagate(trees[t], leaf, node.reward)
            else:
                to_expand.append((t, leaf))
            iterations[t] += 1
        if not to_expand:
            continue
        proposals = proposer.propose([(t, trees[t].path(i)) for t, i in to_expand], config.num_children, False)
        chosen: list[tuple[int, int]] = []
        for (t, leaf), steps in zip(to_expand, proposals):
            if len(steps) != config.num_children:
                raise ValueError(f"MCTS: the proposer returned {len(steps)} steps, expected {config.num_children}")
            for step in steps:
                trees[t].add_child(leaf, step.text, step.tokens)
            chosen += [(t, c) for c in children_to_evaluate(trees[t], leaf)]
        values = evaluate(trees, chosen)
        for (t, child), value in zip(chosen, values):
            if on_evaluated is not None:
                on_evaluated(trees[t], child, value)
            backpropagate(trees[t], child, value)
