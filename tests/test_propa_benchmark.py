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
    from propa_search import question_content, selection_questions

    train = _task(64).load("train", size=2048)
    searched, further = train[:64], train[100:110]
    for name, rows in (("seed0", searched[:32]), ("seed1", searched[32:])):
        save_trees(tmp_path / name / "trees" / "round_00001_rank0.jsonl", [SearchTree() for _ in rows], rows)
    save_trees(tmp_path / "seed0" / "prm_more_trees.jsonl", [SearchTree() for _ in further], further)
    chosen = selection_questions([tmp_path / "seed0", tmp_path / "seed1"], 64)
    used = searched + further
    assert len(chosen) == 64 and len({s["id"] for s in chosen}) == 64
    assert {s["id"] for s in chosen}.isdisjoint(s["id"] for s in used)
    assert {question_content(s) for s in chosen}.isdisjoint(question_content(s) for s in used)
    heldout = {question_content(s) for s in _task(64).load("heldout")}
    assert not {question_content(s) for s in chosen} & heldout


def test_turned_counts_answers_that_changed_by_hand():
    from propa_churn import turned

    assert turned([1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]) == (1, 1)
    assert turned([0.0, 0.0], [1.0, 1.0]) == (2, 0)


class ListedTask:
    """A task whose held-out split is a fixed list of (kind, digits, threshold) questions, index by index."""

    def __init__(self, questions):
        self.questions = questions

    def load(self, split, size):
        return [{"id": f"h{i}", "kind": k, "digits": list(d), "threshold": t}
                for i, (k, d, t) in enumerate((self.questions * (size // len(self.questions) + 1))[:size])]


def test_unscored_heldout_skips_questions_seen_below_start_or_twice_by_hand():
    from propa_fresh_heldout import unscored_heldout

    a, b, c, d, e = (("sum", (i, 1), None) for i in range(5))
    task = ListedTask([a, b, a, c, b, d, d, e])
    # index 2 repeats a (index 0), 4 repeats b (1), 6 repeats d (5): the unscored ones are 3, 5 and 7
    assert [s["id"] for s in unscored_heldout(task, 2, 3)] == ["h3", "h5", "h7"]
    assert [s["id"] for s in unscored_heldout(task, 0, 2)] == ["h0", "h1"]


def test_unscored_heldout_questions_are_new_distinct_and_not_training_questions():
    """Session 8's clean test: 512 held-out questions from index 320 on that no earlier index asked (session 7 scored
    0-319), each once, none a training question, all on the held-out side of the question hash."""
    from learning_propa import _task
    from mmpost.tasks.propa.task import question_split
    from propa_fresh_heldout import unscored_heldout
    from propa_search import question_content

    task = _task(64)
    chosen = unscored_heldout(task, 320, 512)
    keys = [question_content(s) for s in chosen]
    assert len(chosen) == 512 and len(set(keys)) == 512
    assert min(int(s["id"].rsplit("-", 1)[1]) for s in chosen) >= 320
    scored = {question_content(s) for s in task.load("heldout", size=320)}
    assert not set(keys) & scored
    assert not set(keys) & {question_content(s) for s in task.load("train", size=2048)}
    assert all(question_split(k, d, t) == "heldout" for k, d, t in keys)
    # by index, 320-831 would have repeated scored questions: the filter is needed
    assert {question_content(s) for s in task.load("heldout", size=832)[320:]} & scored


def test_learning_propa_runs_a_part_of_the_benchmark():
    """`--methods propa --stages training` (session 8's 48-round runs): only PROPA's seeds, each run from the start for
    all its rounds and keeping its trees; the inference stage without PROPA is refused."""
    import pytest

    from learning_propa import parse_args, training_jobs

    args = parse_args(["--rounds", "48", "--methods", "propa", "--stages", "training"])
    jobs = training_jobs(args)
    assert [job.key for job in jobs] == [("propa", 0), ("propa", 1), ("propa", 2)]
    assert all(job.steps == 48 and f"algorithm.source_args.tree_dir={job.output_dir / 'trees'}" in job.overrides
               and "train.steps=48" in job.build_command() for job in jobs)
    assert not any("resume" in part for job in jobs for part in job.build_command())
    assert {job.key[0] for job in training_jobs(parse_args([]))} == {"propa", "outcome_grpo"}
    with pytest.raises(SystemExit):
        parse_args(["--methods", "outcome_grpo"])  # the default stages include PROPA's inference


def test_paired_question_gain_by_hand():
    from propa_fresh_heldout import paired_question_gain

    # per question: 0.5·(1+1) − 1 = 0, 1 − 0 = 1, 0.5 − 0 = 0.5, 0 − 1 = −1; mean 0.125, sample std 0.85391, SE std / 2
    mean, se = paired_question_gain([1.0, 0.0, 0.0, 1.0], [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    assert abs(mean - 0.125) < 1e-12
    assert abs(se - 0.4269563) < 1e-6


class OneRightOfFour:
    """Every expansion: three copies of a wrong final answer and, second, the question's right one."""

    def __init__(self, samples):
        self.samples, self.calls = samples, 0

    def propose(self, requests, n, greedy):
        self.calls += 1
        texts = lambda q: ["The final answer is x.", f"The final answer is {self.samples[q]['answer']}."]  # noqa: E731
        return [[GeneratedStep(texts(q)[j == 1], [1]) for j in range(n)] for q, _ in requests]


def test_oracle_search_values_each_step_against_its_own_questions_answer(monkeypatch):
    """benchmarks/propa_oracle.py: oracle-guided MCTS scores each terminal step by its correctness against the answer of
    its own question, so the official mean rule finds the one right final answer of four, while the label-free vote
    follows the three wrong copies; each distinct step text is valued once per tree."""
    import propa_oracle
    from learning_propa import _task

    samples = _task(4).load("train", size=3)
    monkeypatch.setattr(propa_oracle, "_policy", lambda model_dir, chunk, temperature: (OneRightOfFour(chunk), None))
    result = propa_oracle.oracle_accuracies(REPO, samples, seed=0, completions=4, rules=("mean", "vote"))
    assert result["mean"] == 1.0 and result["vote"] == 0.0 and result["any_terminal_right"] == 1.0
    assert result["values_estimated"] == 2 * len(samples)  # the wrong text and the right one, per question
    assert result["terminals_per_tree"] == 4.0  # one expansion of 4 final answers, then terminal leaves are re-selected


def test_search_heldout_report_prints_the_official_rule_once():
    from propa_search import strategy_rows

    mean = strategy_rows("regression", 0.5, "mean", [0.4], [0.5], [0.5])
    assert [label for label, _ in mean] == ["greedy", "PRM-MCTS, regression PRM, T 0.5, rule mean"]
    vote = strategy_rows("regression", 0.5, "vote", [0.4], [0.6], [0.5])
    assert [values for _, values in vote] == [[0.4], [0.6], [0.5]] and vote[2][0] == "same trees, official rule mean"


def test_answer_contrast_prm_builds_from_a_runs_trees_and_is_measured_in_sample(tiny_vl_dir, tmp_path):
    """benchmarks/propa_oracle.py's improvement "answer_contrast" trains on a run's sibling and terminal pairs and is
    saved where the search reads PRMs; `in_sample_verifier` scores every terminal node of the same trees."""
    import shutil

    import propa_oracle
    from learning_propa import _task
    from mmpost.search.mcts import SearchTree
    from mmpost.search.source import save_trees

    samples = _task(64).load("train", size=3)
    trees = []
    for sample in samples[:2]:  # each: root -> "a" (visited) and "b"; "a" -> right and wrong final answers
        tree = SearchTree(answer=str(sample["answer"]))
        a, b = tree.add_child(0, "a"), tree.add_child(0, "b")
        tree.nodes[a].visits, tree.nodes[a].value, tree.nodes[b].visits = 2, 1.0, 1
        tree.add_child(a, f"The final answer is {sample['answer']}."), tree.add_child(a, "The final answer is x.")
        trees.append(tree)
    runs, prms = tmp_path / "runs", tmp_path / "prms"
    shutil.copytree(tiny_vl_dir, runs / "seed0" / "checkpoints" / "step_1" / "model")
    save_trees(runs / "seed0" / "trees" / "round_1_rank0.jsonl", trees, samples[:2])
    info = propa_oracle.improved_prm(0, "answer_contrast", runs, prms)
    # per tree: one sibling pair (a 1/2 > b 0/1) and one terminal pair (right > wrong)
    assert info["sibling_pairs"] == 2 and info["terminal_pairs"] == 2 and len(info["losses"]) == 3
    assert (prms / "seed0" / "prm_answer_contrast" / "value_head.json").is_file()
    assert propa_oracle.improved_prm(0, "answer_contrast", runs, prms) == info  # built once, then read back
    found = propa_oracle.in_sample_verifier(0, "prm_answer_contrast", runs, prms)
    assert found["candidates"] == 4 and found["mixed_sets"] == 2  # 2 terminals per tree, each tree mixed
