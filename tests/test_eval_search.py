"""`mmpost eval search`: greedy / step-level best-of-n / PRM-guided MCTS on a step-format task through `eval_main`,
files written, scoring by the step format's check, and clear errors for a missing PRM."""
import json

import pytest

from mmpost.eval.cli import eval_main
from mmpost.eval.search_strategy import check_strategy, run_search_evaluation, score_answers
from mmpost.search.prm import SearchAnswer


def test_scores_use_the_final_step_check():
    answers = [SearchAnswer(["The digits are 1, 2.", "1 + 2 = 3. The final answer is 3."], 0.0),
               SearchAnswer(["The final answer is 4."], 0.0),
               SearchAnswer(["The digits are 1, 2."], 0.0),  # no final answer
               SearchAnswer(["The final answer is 12."], 0.0)]  # official substring quirk: "1" matches "12"
    samples = [{"answer": "3"}, {"answer": 5}, {"answer": "3"}, {"answer": "1"}]
    assert score_answers(answers, samples) == [1.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="no `answer` field"):
        score_answers(answers[:1], [{"id": "q7"}])


def test_prm_strategies_without_a_prm_name_the_flag():
    check_strategy("greedy", has_prm=False)
    for strategy in ("best_of_n", "prm_mcts"):
        with pytest.raises(ValueError, match="--prm PRM_DIR"):
            check_strategy(strategy, has_prm=False)
    with pytest.raises(ValueError, match="unknown --strategy 'beam'"):
        check_strategy("beam", has_prm=True)
    with pytest.raises(ValueError, match="--prm"):
        run_search_evaluation("/nonexistent-policy", "prm_mcts", output=None)  # refused before anything loads


@pytest.fixture(scope="module")
def prm_dir(tiny_vl_dir, tmp_path_factory):
    from mmpost.search.prm import build_prm

    return build_prm(tiny_vl_dir, seed=0).save(tmp_path_factory.mktemp("prm") / "prm")


COMMON = ["--task", "propa_digits", "--task-arg", "question_style=short", "--task-arg", "heldout_size=8",
          "--split", "heldout", "--limit", "3", "--num-children", "2", "--min-iterations", "2",
          "--min-final-answers", "1", "--max-iterations", "3", "--max-steps", "2", "--max-new-tokens", "6",
          "--system-prompt", ""]


@pytest.mark.parametrize("strategy", ["greedy", "best_of_n", "prm_mcts"])
def test_each_strategy_runs_end_to_end(strategy, tiny_vl_dir, prm_dir, tmp_path, capsys):
    from mmpost.search.mcts import is_correct_step
    from mmpost.tasks.propa import PropaDigitsTask

    out = tmp_path / strategy
    prm = [] if strategy == "greedy" else ["--prm", str(prm_dir)]
    assert eval_main(["search", "--model", str(tiny_vl_dir), "--strategy", strategy, *prm, *COMMON,
                      "--output", str(out)]) == 0
    assert f"strategy={strategy}" in capsys.readouterr().out

    results = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "samples_search.jsonl").read_text().splitlines()]
    expected = PropaDigitsTask(question_style="short", heldout_size=8).load("heldout")[:3]
    assert [r["id"] for r in rows] == [s["id"] for s in expected]
    assert [r["target"] for r in rows] == [s["answer"] for s in expected]
    assert [r["question"] for r in rows] == [s["problem"] for s in expected]
    for row in rows:
        assert row["score"] == (1.0 if is_correct_step(row["final_answer"], row["target"]) else 0.0)
        if strategy == "prm_mcts":  # the best terminal path, or no steps at all when the tree reached no final answer
            assert bool(row["steps"]) == bool(row["final_answer"])
        else:  # a chain stops at a final answer or after --max-steps 2
            assert 1 <= len(row["steps"]) <= 2
        assert row["final_answer"] in ("", row["steps"][-1] if row["steps"] else "")
    counts = results["counts"]
    assert counts["questions"] == 3
    assert counts["correct"] == sum(r["score"] for r in rows)
    assert counts["no_final_answer"] == sum(1 for r in rows if not r["final_answer"])
    assert results["metrics"]["accuracy"] == pytest.approx(counts["correct"] / 3)
    assert results["strategy"] == strategy and results["settings"]["num_children"] == 2
    assert results["settings"]["max_iterations"] == 3 and results["settings"]["system_prompt"] == ""
    assert results["model"] == str(tiny_vl_dir)
    assert results["prm"] == (None if strategy == "greedy" else str(prm_dir))
    assert results["task_args"] == {"question_style": "short", "heldout_size": 8}


def test_missing_prm_flag_fails_with_a_clear_message(tiny_vl_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_main(["search", "--model", str(tiny_vl_dir), "--strategy", "prm_mcts", *COMMON, "--output", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--strategy prm_mcts needs --prm PRM_DIR" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()
