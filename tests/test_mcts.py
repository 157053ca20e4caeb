"""MCTS over reasoning steps (PROPA): step checks, UCT, selection, backpropagation and a whole search driven by a
scripted policy, against numbers worked out by hand."""
import math

import pytest

from mmpost.search.mcts import (
    GeneratedStep, MCTSConfig, SearchTree, backpropagate, children_to_evaluate, is_correct_step, is_terminal_step,
    rollout_evaluator, run_mcts, select_leaf, step_messages, step_user_suffix, uct_score,
)


class ScriptedProposer:
    """Sampling returns `expansions[path]` (k steps); greedy returns `greedy[path]`; every call is recorded."""

    def __init__(self, expansions, greedy):
        self.expansions, self.greedy, self.calls = expansions, greedy, []

    def propose(self, requests, n, greedy):
        self.calls.append((len(requests), n, greedy))
        table = self.greedy if greedy else self.expansions
        out = []
        for _, steps in requests:
            texts = table[" | ".join(steps)]
            texts = [texts] if isinstance(texts, str) else texts
            assert len(texts) == n
            out.append([GeneratedStep(t, [len(t)]) for t in texts])
        return out


# Hand-worked search (answer "5", k = 2, 3 iterations, max depth 3):
# it1: expand root -> A, B (no terminal: only A simulated) ; greedy A -> "final 5" -> 1.   A 1/1, root 1/1
# it2: UCT picks unvisited B; expand -> B1 "final 4", C (B1 terminal: both evaluated) ; B1 -> 0, C -> greedy "final 5" -> 1
#      B1 0/1, C 1/1, B 1/2, root 2/3
# it3: UCT(A) = 1 + sqrt(2 ln 3) = 2.4823 > UCT(B) = 0.5 + sqrt(ln 3) = 1.5481 -> expand A -> A1 "final 5", D
#      A1 -> 1; D -> greedy E (path A D E = depth 3, not terminal) -> 0.   A 2/3, root 3/5
SCRIPT = ScriptedProposer(
    expansions={"": ["A", "B"], "B": ["The final answer is 4.", "C"], "A": ["So the final answer is 5.", "D"]},
    greedy={"A": "The final answer is 5.", "B | C": "The Final Answer is \\(5\\).", "A | D": "E"},
)


def hand_tree():
    tree = SearchTree(answer="5")
    proposer = ScriptedProposer(SCRIPT.expansions, SCRIPT.greedy)
    iterations = run_mcts([tree], proposer, rollout_evaluator(proposer, max_depth=3), MCTSConfig(iterations=3, num_children=2))
    return tree, proposer, iterations


def test_terminal_and_correct_checks():
    assert is_terminal_step("So THE FINAL ANSWER IS 7.") and not is_terminal_step("the answer is 7")
    assert is_correct_step("The final answer is \\(12\\).", "12")
    assert not is_correct_step("The final answer is 13.", "12")
    assert not is_correct_step("the answer is 12", "12")  # not terminal, so never correct
    assert is_correct_step("The final answer is B", " b ")
    assert is_correct_step("The final answer is 12", "1")  # the official substring test (documented quirk)


def test_step_prompt_format():
    assert step_user_suffix([]) == " First step:"
    assert step_user_suffix(["s1", "s2"]) == " Existing steps: s1 s2 Next step:"
    question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]}]
    messages = step_messages(question, ["a."], system_prompt="SYS")
    assert messages[0] == {"role": "system", "content": "SYS"}
    assert messages[1]["content"][1]["text"] == "Q? Existing steps: a. Next step:"
    assert question[0]["content"][1]["text"] == "Q?"  # the task's messages are not mutated
    assert step_messages(question, [], system_prompt="")[0]["role"] == "user"


def test_uct_values():
    assert uct_score(3, 0, 0.0) == math.inf
    assert uct_score(3, 1, 1.0) == pytest.approx(2.4823038)
    assert uct_score(3, 2, 1.0) == pytest.approx(1.5481471)
    assert uct_score(4, 2, 1.0, c=0.0) == 0.5


def test_selection_prefers_unvisited_then_first_of_ties_then_uct():
    tree = SearchTree(answer="1")
    a, b = tree.add_child(0, "a"), tree.add_child(0, "b")
    assert select_leaf(tree) == a  # both unvisited: the first
    backpropagate(tree, a, 1.0)
    assert select_leaf(tree) == b  # unvisited beats any finite score
    backpropagate(tree, b, 1.0)
    assert select_leaf(tree) == a  # equal scores: the first
    backpropagate(tree, b, 1.0)  # b: 2/2 -> 1 + sqrt(2 ln 3 / 2) = 2.048 < a: 1 + sqrt(2 ln 3) = 2.482
    assert select_leaf(tree) == a
    final = tree.add_child(a, "The final answer is 1")
    backpropagate(tree, final, 1.0)
    assert tree.nodes[final].terminal and tree.nodes[final].reward == 1.0
    # descending stops at a terminal node
    for _ in range(5):
        backpropagate(tree, b, 0.0)
    assert select_leaf(tree) == final


def test_backpropagation_updates_the_whole_path():
    tree = SearchTree(answer="1")
    a = tree.add_child(0, "a")
    b = tree.add_child(a, "b")
    backpropagate(tree, b, 1.0)
    backpropagate(tree, a, 0.0)
    assert [(n.visits, n.value) for n in tree.nodes] == [(2, 1.0), (2, 1.0), (1, 1.0)]
    assert tree.nodes[a].q == 0.5 and tree.nodes[b].depth == 2 and tree.path(b) == ["a", "b"]


def test_only_first_child_is_evaluated_unless_one_is_terminal():
    tree = SearchTree(answer="1")
    tree.add_child(0, "x"), tree.add_child(0, "y")
    assert children_to_evaluate(tree, 0) == [1]
    tree.add_child(1, "y"), tree.add_child(1, "the final answer is 3")
    assert children_to_evaluate(tree, 1) == [3, 4]


def test_scripted_search_builds_the_hand_worked_tree():
    tree, proposer, iterations = hand_tree()
    assert iterations == [3]
    stats = [(n.step, n.visits, n.value, n.terminal, n.reward) for n in tree.nodes]
    assert stats == [
        ("", 5, 3.0, False, 0.0),
        ("A", 3, 2.0, False, 0.0),
        ("B", 2, 1.0, False, 0.0),
        ("The final answer is 4.", 1, 0.0, True, 0.0),
        ("C", 1, 1.0, False, 0.0),
        ("So the final answer is 5.", 1, 1.0, True, 1.0),
        ("D", 1, 0.0, False, 0.0),
    ]
    # 3 expansions (k = 2, sampled) and greedy simulations: A; C; D -> E (one step, the depth cap stops it).
    assert proposer.calls == [(1, 2, False), (1, 1, True), (1, 2, False), (1, 1, True), (1, 2, False), (1, 1, True)]
    assert tree.nodes[1].tokens == [1]  # the sampled step's tokens are kept for training rows


def test_trees_search_in_lockstep_and_terminal_leaves_backpropagate_their_reward():
    proposer = ScriptedProposer({"": ["The final answer is 5.", "The final answer is 6."]}, {})
    trees = [SearchTree(answer="5"), SearchTree(answer="6")]
    run_mcts(trees, proposer, rollout_evaluator(proposer), MCTSConfig(iterations=4, num_children=2))
    assert proposer.calls == [(2, 2, False)]  # one batched expansion for both trees, nothing left to expand after
    # it1: both children evaluated (terminal) -> root 2 visits; it2-4 select terminal leaves and backpropagate rewards
    assert [(n.visits, n.value) for n in trees[0].nodes] == [(5, 4.0), (4, 4.0), (1, 0.0)]


def test_stopping_rule_needs_final_answers_up_to_the_cap():
    # Constant value 0.5. it1: root -> a, b (a evaluated). it2: b unvisited -> b -> e, f (e evaluated).
    # it3: UCT(a) = UCT(b) = 0.5 + sqrt(2 ln 2) -> a (first) -> c, d. it4: UCT(b) = 0.5 + sqrt(2 ln 3) = 1.98 >
    # UCT(a) = 0.5 + sqrt(ln 3) = 1.55 -> b -> unvisited f -> expands to the first final answer: stop after 4.
    proposer = ScriptedProposer({"": ["a", "b"], "b": ["e", "f"], "a": ["c", "d"], "b | f": ["The final answer is 1", "z"]}, {})
    evaluate = lambda trees, nodes: [0.5] * len(nodes)  # noqa: E731 - a constant value model
    config = MCTSConfig(iterations=1, num_children=2, min_final_answers=1, max_iterations=10)
    tree = SearchTree()
    assert run_mcts([tree], proposer, evaluate, config) == [4]
    assert tree.final_answers == 1 and tree.nodes[-2].terminal and tree.nodes[-2].reward == 0.0  # no answer known
    capped = run_mcts([SearchTree()], proposer, evaluate, MCTSConfig(iterations=1, num_children=2, min_final_answers=3, max_iterations=3))
    assert capped == [3]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="max_iterations"):
        MCTSConfig(iterations=5, max_iterations=3)
    with pytest.raises(ValueError, match="num_children"):
        MCTSConfig(num_children=0)


def test_completion_values_by_hand():
    from mmpost.search.mcts import MonteCarloValues, completion_values

    # Path "A", 4 sampled continuations (answer 5, max depth 3): "final 5" (right), "B" -> "final 5" (right),
    # "final 4" (wrong), "C" -> "D" (the path A C D holds 3 steps: cut, wrong) = 2 / 4.
    proposer = ScriptedProposer({"A": ["The final answer is 5.", "B", "The final answer is 4.", "C"],
                                 "A | B": "The final answer is 5.", "A | C": "D"}, {})
    requests = [(0, ["A"]), (0, ["A", "The final answer is \\(5\\)."]), (1, ["The final answer is 5."]), (0, ["x", "y", "z"])]
    values = completion_values(proposer, requests, ["5", "5", None, "5"], completions=4, greedy=False, max_depth=3)
    # a terminal path is its own ending (no answer known: wrong); a path already at the depth cap is wrong
    assert values == [0.5, 1.0, 0.0, 0.0]
    # one batched call draws the 4 first steps, then one step per live continuation (B and C together), then none
    assert proposer.calls == [(1, 4, False), (2, 1, False)]
    with pytest.raises(ValueError, match="completions must be 1"):
        completion_values(proposer, requests, ["5"] * 4, completions=4, greedy=True)

    # the oracle evaluator: a node's value is completion_values against its tree's answer; a path seen twice
    # (the same step text sampled again at one node) is estimated once
    tree = SearchTree()
    a, again, final = tree.add_child(0, "A"), tree.add_child(0, "A"), tree.add_child(0, "The final answer is 4.")
    oracle_proposer = ScriptedProposer(proposer.expansions, {})
    oracle = MonteCarloValues(oracle_proposer, ["5"], completions=4, max_depth=3)
    assert oracle([tree], [(0, a), (0, again), (0, final)]) == [0.5, 0.5, 0.0]
    assert oracle_proposer.calls == [(1, 4, False), (2, 1, False)] and len(oracle.values) == 2
