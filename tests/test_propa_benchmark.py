"""The PROPA benchmarks' data plumbing: the warm-start curve's dev questions are unseen training questions, and the
PRM-data search (learning_propa.search_more_trees) reads back what it already searched instead of searching again."""
import sys

from mmpost.search.mcts import GeneratedStep
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


def test_curve_dev_questions_are_unseen_training_questions():
    from warmstart_propa_curve import DEV_QUESTIONS, question_sets

    def key(s):
        return s["kind"], tuple(s["digits"]), s["threshold"]

    task, sets = question_sets()
    trained = {key(s) for s in task.load("train")}  # the 512 questions the warm-start SFT draws from
    heldout = {key(s) for s in sets["heldout"]}
    assert len(sets["dev"]) == DEV_QUESTIONS == 64
    assert not {key(s) for s in sets["dev"]} & trained
    assert not {key(s) for s in sets["dev"]} & heldout
    assert {s["id"] for s in sets["dev"]}.isdisjoint(s["id"] for s in task.load("train"))


class AnswerProposer:
    """Every step is a final answer: right ("The final answer is {answer}.") for even questions, wrong for odd ones."""

    def __init__(self, samples):
        self.samples, self.calls = samples, 0

    def propose(self, requests, n, greedy):
        self.calls += 1
        out = []
        for q, _ in requests:
            answer = self.samples[q]["answer"] if q % 2 == 0 else "x"
            out.append([GeneratedStep(f"The final answer is {answer}.", [1])] * n)
        return out


def test_search_more_trees_caches_and_extends(tmp_path, monkeypatch):
    import learning_propa

    task = learning_propa._task(4)
    samples = task.load("train", size=6)
    made = []

    def proposer(model_dir, task, chunk, temperature=1.0):
        made.append(len(chunk))
        return AnswerProposer(chunk), None

    monkeypatch.setattr(learning_propa, "_proposer", proposer)
    cache = tmp_path / "more.jsonl"
    first = learning_propa.search_more_trees(tmp_path, task, samples[:4], iterations=2, max_steps=3, batch=2, cache=cache)
    assert made == [2, 2] and [s["id"] for s, _ in first] == [s["id"] for s in samples[:4]]
    # question 0 of each batch of 2 is answered right: its root value is 1, the other's 0
    assert [tree.nodes[0].visits > 0 and tree.nodes[0].q for _, tree in first] == [1.0, 0.0, 1.0, 0.0]
    again = learning_propa.search_more_trees(tmp_path, task, samples[:4], iterations=2, max_steps=3, batch=2, cache=cache)
    assert made == [2, 2]  # read back, not searched again
    assert [t.to_dict() for _, t in again] == [t.to_dict() for _, t in first]
    more = learning_propa.search_more_trees(tmp_path, task, samples, iterations=2, max_steps=3, batch=2, cache=cache)
    assert made == [2, 2, 2]  # only the two new questions are searched
    assert [s["id"] for s, _ in more] == [s["id"] for s in samples]
    assert len(cache.read_text().splitlines()) == 6


def test_search_selection_questions_are_training_questions_no_run_searched(tmp_path):
    """benchmarks/propa_search.py chooses its settings on training questions whose ids and contents are outside every
    run's trees (and the PRM sweep's further trees), never on held-out ones."""
    from learning_propa import _task
    from mmpost.search.mcts import SearchTree
    from mmpost.search.source import save_trees
    from propa_search import _content, selection_questions

    train = _task(64).load("train", size=2048)
    searched, further = train[:64], train[100:110]
    for name, rows in (("seed0", searched[:32]), ("seed1", searched[32:])):
        save_trees(tmp_path / name / "trees" / "round_00001_rank0.jsonl", [SearchTree() for _ in rows], rows)
    save_trees(tmp_path / "seed0" / "prm_more_trees.jsonl", [SearchTree() for _ in further], further)
    chosen = selection_questions([tmp_path / "seed0", tmp_path / "seed1"], 64)
    used = searched + further
    assert len(chosen) == 64 and len({s["id"] for s in chosen}) == 64
    assert {s["id"] for s in chosen}.isdisjoint(s["id"] for s in used)
    assert {_content(s) for s in chosen}.isdisjoint(_content(s) for s in used)
    heldout = {_content(s) for s in _task(64).load("heldout")}
    assert not {_content(s) for s in chosen} & heldout


def test_turned_counts_answers_that_changed_by_hand():
    from propa_churn import turned

    assert turned([1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]) == (1, 1)
    assert turned([0.0, 0.0], [1.0, 1.0]) == (2, 0)
