"""The process reward model: training data from trees, the value head (save/load, LoRA, learning), best-path
choice and PRM-guided search, against hand-worked trees."""
import math

import pytest
import torch

from mmpost.search.mcts import SearchTree, backpropagate
from mmpost.search.prm import best_terminal_path, prm_examples
from test_mcts import ScriptedProposer


def small_tree():
    """root -> a (1/2), b (unvisited); a -> c (1/1), d (0/1), e (unvisited), f (unvisited); b -> nothing."""
    tree = SearchTree(answer="1")
    a, b = tree.add_child(0, "a"), tree.add_child(0, "b")
    c, d = tree.add_child(a, "c"), tree.add_child(a, "d")
    tree.add_child(a, "e")
    g = tree.add_child(d, "g")  # unvisited, and its only sibling-less parent d has value 0
    backpropagate(tree, c, 1.0)
    backpropagate(tree, d, 0.0)
    return tree, (a, b, c, d, g)


def test_prm_examples_keep_unvisited_nodes_only_beside_a_nonzero_sibling():
    tree, (a, b, c, d, g) = small_tree()
    examples = [(e.steps, e.label) for e in prm_examples(tree, question=3)]
    # b: unvisited, sibling a has 1/2 -> kept with 0; e: unvisited, sibling c = 1 -> kept; g: no siblings -> dropped.
    assert examples == [(("a",), 0.5), (("b",), 0.0), (("a", "c"), 1.0), (("a", "d"), 0.0), (("a", "e"), 0.0)]
    assert all(e.question == 3 for e in prm_examples(tree, question=3))


def test_best_terminal_path_is_the_highest_mean_score_with_the_root_counted():
    tree = SearchTree()
    a, b = tree.add_child(0, "a"), tree.add_child(0, "the final answer is 2")
    c = tree.add_child(a, "the final answer is 3")
    tree.nodes[a].score, tree.nodes[b].score, tree.nodes[c].score = 0.9, 0.5, 0.6
    # path root-a-c: (0 + 0.9 + 0.6) / 3 = 0.5 ; path root-b: (0 + 0.5) / 2 = 0.25
    assert best_terminal_path(tree) == (c, pytest.approx(0.5))
    tree.nodes[b].score = 1.0  # (0 + 1) / 2 = 0.5: a tie goes to the earlier node, b
    assert best_terminal_path(tree)[0] == b
    assert best_terminal_path(SearchTree()) == (None, float("-inf"))


@pytest.fixture(scope="module")
def parts(tiny_vl_dir):
    from transformers import AutoProcessor

    from mmpost.modalities.image import ImageModality
    from mmpost.search.prm import PathEncoder
    from mmpost.tasks.propa import PropaDigitsTask

    task = PropaDigitsTask(question_style="short")
    samples = task.load("train", size=2)
    return PathEncoder(AutoProcessor.from_pretrained(tiny_vl_dir), task, ImageModality(), samples)


def test_prm_learns_saves_and_loads(tiny_vl_dir, parts, tmp_path):
    from mmpost.search.prm import PRMExample, build_prm, load_prm, prm_scores, train_prm

    prm = build_prm(tiny_vl_dir, seed=0)
    examples = [PRMExample(0, ("The digits are 1, 2.",), 1.0), PRMExample(1, ("The digits are 7.",), 0.0),
                PRMExample(0, (), 0.5)]
    losses = train_prm(prm, parts, examples, epochs=12, lr=3e-3, batch_size=3)
    assert losses[-1] < 0.5 * losses[0], losses
    requests = [(e.question, e.steps) for e in examples]
    before = prm_scores(prm, parts, requests)
    assert all(0.0 <= v <= 1.0 for v in before)
    folder = prm.save(tmp_path / "prm")
    assert (folder / "value_head.safetensors").is_file() and (folder / "model.safetensors").is_file()
    assert prm_scores(load_prm(folder), parts, requests) == pytest.approx(before, abs=1e-5)


def test_lora_prm_trains_adapter_and_head_only(tiny_vl_dir, parts, tmp_path):
    from mmpost.search.prm import PRMExample, build_prm, load_prm, prm_scores, train_prm

    prm = build_prm(tiny_vl_dir, lora={"r": 4, "lora_alpha": 8})
    trainable = {n for n, p in prm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    train_prm(prm, parts, [PRMExample(0, (), 1.0)], epochs=2, lr=1e-2, batch_size=1)
    folder = prm.save(tmp_path / "lora_prm")
    assert (folder / "adapter_config.json").is_file()
    with pytest.raises(ValueError, match="needs `base`"):
        load_prm(folder)
    reloaded = load_prm(folder, base=tiny_vl_dir)
    assert prm_scores(reloaded, parts, [(0, ())]) == pytest.approx(prm_scores(prm, parts, [(0, ())]), abs=1e-5)


def test_prm_guided_search_returns_the_best_scored_final_answer(tiny_vl_dir, parts):
    from mmpost.search.prm import best_of_n_answer, build_prm, greedy_answer, prm_guided_answer

    proposer = ScriptedProposer(
        {"": ["a", "The final answer is 3."], "a": ["The final answer is 4.", "The final answer is 5."]},
        {"": "a", "a": "The final answer is 4."})
    prm = build_prm(tiny_vl_dir)
    answers = prm_guided_answer(proposer, prm, parts, 1, num_children=2, min_iterations=3, min_final_answers=2,
                                max_iterations=10)
    assert answers[0].text.startswith("The final answer is") and answers[0].steps[-1] == answers[0].text
    assert proposer.calls[:2] == [(1, 2, False), (1, 2, False)]  # root, then a; later iterations only revisit leaves
    assert greedy_answer(proposer, 1, max_steps=5)[0].steps == ["a", "The final answer is 4."]
    best = best_of_n_answer(proposer, prm, parts, 1, n=2, max_steps=3)[0]
    assert best.steps[0] in ("a", "The final answer is 3.") and 0.0 <= best.score <= 1.0


def test_roc_auc_and_prm_ranking_metrics_by_hand():
    from mmpost.search.prm import StepJudgement, prm_ranking_metrics, roc_auc

    # positives 0.9, 0.4; negatives 0.5, 0.4: pairs (0.9>0.5) 1, (0.9>0.4) 1, (0.4<0.5) 0, (0.4=0.4) 1/2 -> 2.5 / 4
    assert roc_auc([0.9, 0.5, 0.4, 0.4], [True, False, True, False]) == pytest.approx(0.625)
    assert roc_auc([0.3], [True]) != roc_auc([0.3], [True])  # NaN: one class only
    judgements = [
        # question 0, depth 0: mixed; the PRM's top pick (0.9) is right; 1 of 3 right
        StepJudgement(0, 0, 0.9, True), StepJudgement(0, 0, 0.5, False), StepJudgement(0, 0, 0.2, False),
        # question 0, depth 1: mixed; top pick (0.8) is wrong; 2 of 3 right
        StepJudgement(0, 1, 0.8, False), StepJudgement(0, 1, 0.6, True), StepJudgement(0, 1, 0.1, True),
        # question 1, depth 0: all wrong: not a set where choosing matters
        StepJudgement(1, 0, 0.7, False), StepJudgement(1, 0, 0.3, False),
    ]
    metrics = prm_ranking_metrics(judgements)
    assert metrics["mixed_sets"] == 2 and metrics["candidates"] == 8
    # lifts: 1 - 1/3 = 2/3 and 0 - 2/3 = -2/3 -> mean 0, sample std 0.9428, SE 0.9428 / sqrt 2 = 2/3
    assert metrics["pick_lift"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["pick_lift_se"] == pytest.approx(2 / 3)
    assert metrics["pick_right"] == pytest.approx(0.5)                   # right, wrong
    assert metrics["random_pick_right"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert metrics["right_fraction"] == pytest.approx(3 / 8)
    # 3 positives (0.9, 0.6, 0.1) x 5 negatives (0.5, 0.2, 0.8, 0.7, 0.3): 0.9 beats 5, 0.6 beats 3, 0.1 beats 0
    assert metrics["auc"] == pytest.approx(8 / 15)


def test_prm_step_judgements_label_each_candidate_by_a_greedy_rollout(tiny_vl_dir, parts):
    from mmpost.search.prm import build_prm, prm_step_judgements

    answer = str(parts.samples[0]["answer"])
    other = str(int(answer) + 1)
    # depth 0 (greedy chain: "a", then a right answer): candidates "a" (rollout -> right) and a wrong final answer;
    # depth 1 (after "a"): a right and a wrong final answer, judged by themselves.
    proposer = ScriptedProposer(
        {"": ["a", f"The final answer is {other}."], "a": [f"The final answer is {answer}.", f"The final answer is {other}."]},
        {"": "a", "a": f"The final answer is {answer}."})
    judgements = prm_step_judgements(proposer, build_prm(tiny_vl_dir), parts, 1, k=2, depths=(0, 1), max_steps=4)
    assert [(j.depth, j.right) for j in judgements] == [(0, True), (0, False), (1, True), (1, False)]
    assert all(0.0 <= j.score <= 1.0 for j in judgements)


# -- final-path rules and the sibling-contrast PRM (ours) -------------------------------------------------
def rule_tree():
    """root -> a (0.9) -> "final answer is 3" (0.6); root -> b "final answer is 2" (0.5);
    root -> c (0.2) -> "final answer is 2." (0.95)."""
    tree = SearchTree()
    a, b, c = tree.add_child(0, "a"), tree.add_child(0, "The final answer is 2"), tree.add_child(0, "c")
    d = tree.add_child(a, "The final answer is 3")
    e = tree.add_child(c, "So the final answer is 2.")
    for node, score in ((a, 0.9), (b, 0.5), (c, 0.2), (d, 0.6), (e, 0.95)):
        tree.nodes[node].score = score
    return tree, (a, b, c, d, e)


def test_path_score_and_final_answer_by_hand():
    from mmpost.search.prm import final_answer_of, path_score

    assert path_score([0.9, 0.6], "mean") == pytest.approx(0.5)  # (0 + 0.9 + 0.6) / 3, the root counted
    assert path_score([0.9, 0.6], "last") == 0.6
    assert path_score([0.9, 0.6], "min") == 0.6
    assert path_score([0.9, 0.6], "product") == pytest.approx(0.54)
    assert path_score([], "min") == float("-inf")
    with pytest.raises(ValueError, match="unknown rule"):
        path_score([0.5], "vote")
    assert final_answer_of("So The final answer is \\(12\\).") == "12"
    assert final_answer_of("The final answer is 3") == "3" and final_answer_of("3 + 4 = 7.") == ""


def test_best_terminal_path_under_each_rule_by_hand():
    tree, (a, b, c, d, e) = rule_tree()
    # mean: d (0 + 0.9 + 0.6)/3 = 0.5, b 0.5/2 = 0.25, e (0.2 + 0.95)/3 = 0.383 -> d
    assert best_terminal_path(tree, "mean") == (d, pytest.approx(0.5))
    assert best_terminal_path(tree, "last") == (e, pytest.approx(0.95))
    assert best_terminal_path(tree, "min") == (d, pytest.approx(0.6))  # min: d 0.6, b 0.5, e 0.2
    assert best_terminal_path(tree, "product") == (d, pytest.approx(0.54))  # b 0.5, e 0.19
    # vote: answer "2" twice (b, e), "3" once; among the 2s the higher mean is e (0.383 > 0.25)
    assert best_terminal_path(tree, "vote") == (e, 2.0)
    # score vote: "2" 0.5 + 0.95 = 1.45 > "3" 0.6
    assert best_terminal_path(tree, "score_vote") == (e, pytest.approx(1.45))
    with pytest.raises(ValueError, match="unknown rule"):
        best_terminal_path(tree, "median")


def test_sibling_pairs_pool_duplicates_and_skip_unvisited_and_ties():
    from mmpost.search.prm import sibling_pairs

    tree = SearchTree(answer="1")
    x1, y, x2, z, w = (tree.add_child(0, t) for t in ("x", "y", " x", "z", "w"))
    for node, (n, v) in {x1: (1, 1.0), y: (2, 0.0), x2: (1, 0.0), z: (0, 0.0), w: (2, 1.0)}.items():
        tree.nodes[node].visits, tree.nodes[node].value = n, v
    leaf = tree.add_child(y, "the final answer is 1")  # y's only child: no pair
    tree.nodes[leaf].visits = 1
    pairs = [(p.better, p.worse) for p in sibling_pairs(tree, question=2)]
    # pooled: x q = 1/2, y 0, w 1/2 (z unvisited: left out); pairs with different q: x > y, w > y; x = w: none
    assert pairs == [(("x",), ("y",)), (("w",), ("y",))]
    assert all(p.question == 2 for p in sibling_pairs(tree, question=2))


def test_terminal_pairs_contrast_right_and_wrong_final_answers_of_one_tree():
    from mmpost.search.prm import terminal_pairs

    tree = SearchTree(answer="2")
    a = tree.add_child(0, "a")
    right_1 = tree.add_child(0, "The final answer is 2")  # right (reward 1), unvisited: still a pair member
    wrong_1 = tree.add_child(a, "The final answer is 3")
    right_2 = tree.add_child(a, "so the final answer is 2.")
    tree.add_child(a, "The final answer is 3")  # the same path as wrong_1: paired once
    tree.add_child(a, "b")  # not terminal: never paired
    assert [tree.nodes[i].reward for i in (right_1, wrong_1, right_2)] == [1.0, 0.0, 1.0]
    pairs = [(p.better, p.worse) for p in terminal_pairs(tree, question=4)]
    assert pairs == [(("The final answer is 2",), ("a", "The final answer is 3")),
                     (("a", "so the final answer is 2."), ("a", "The final answer is 3"))]
    assert {p.question for p in terminal_pairs(tree, question=4)} == {4}
    assert terminal_pairs(SearchTree(answer="2")) == []


def test_pairwise_loss_by_hand():
    from mmpost.search.prm import pairwise_loss

    better, worse = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log sigmoid(2) = log(1 + e^-2) = 0.126928; -log sigmoid(0) = log 2 = 0.693147 -> mean 0.410038
    assert pairwise_loss(better, worse).item() == pytest.approx(0.410038, abs=1e-6)


def test_pairwise_prm_learns_a_sibling_order_saves_and_reads_through_a_sigmoid(tiny_vl_dir, parts, tmp_path):
    from mmpost.search.prm import PRMPair, build_prm, load_prm, prm_scores, train_pairwise_prm

    prm = build_prm(tiny_vl_dir, seed=0, objective="pairwise")
    pairs = [PRMPair(0, ("The digits are 1, 2.",), ("The digits are 7.",)), PRMPair(1, ("a b",), ("c",))]
    losses = train_pairwise_prm(prm, parts, pairs, epochs=10, lr=3e-3, batch_size=2)
    assert losses[-1] < 0.5 * losses[0], losses
    requests = [(0, ("The digits are 1, 2.",)), (0, ("The digits are 7.",))]
    scores = prm_scores(prm, parts, requests)
    assert scores[0] > scores[1] and all(0.0 < v < 1.0 for v in scores)
    with torch.no_grad():
        raw = prm(**parts.batch(requests)).float()
    assert scores == pytest.approx(torch.sigmoid(raw).tolist(), abs=1e-6)  # a sigmoid, not a clamp
    folder = prm.save(tmp_path / "pairwise")
    reloaded = load_prm(folder)
    assert reloaded.objective == "pairwise" and prm_scores(reloaded, parts, requests) == pytest.approx(scores, abs=1e-5)
    with pytest.raises(ValueError, match="objective"):
        train_pairwise_prm(build_prm(tiny_vl_dir), parts, pairs, epochs=1)


def test_spearman_and_sibling_value_metrics_by_hand():
    from mmpost.search.prm import _average_ranks, sibling_value_metrics, spearman

    assert _average_ranks([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert math.isnan(spearman([0.3, 0.3], [0.1, 0.2]))  # constant scores: undefined
    # Set 1: halves (1, .5, 0) and (.5, .5, 0), values (.75, .5, 0), mean 5/12; the ranker picks the second.
    #   cross-fitted best gap: pick by half 1 (first) -> half 2: .5 - 1/3 = 1/6; pick by half 2 (first of the tied .5)
    #   -> half 1: 1 - .5 = .5; mean 1/3. Ranker gap .5 - 5/12 = 1/12; its pick is not the best (chance 1/3).
    #   Spearman: score ranks (2, 3, 1), value ranks (3, 2, 1): sxy = 1, sxx = syy = 2 -> 0.5.
    # Set 2: two equal siblings (.5, .5): nothing to choose, every gap 0, left out of agreement and Spearman.
    m = sibling_value_metrics([([1.0, 0.5, 0.0], [0.5, 0.5, 0.0], [0.2, 0.9, 0.1]), ([0.5, 0.5], [0.5, 0.5], [0.3, 0.3])])
    assert m["sets"] == 2 and m["differ"] == 0.5
    assert m["random_value"] == pytest.approx((5 / 12 + 0.5) / 2)
    assert m["best_value_naive"] == pytest.approx(0.625) and m["best_gap_naive"] == pytest.approx((0.75 - 5 / 12) / 2)
    assert m["best_gap"] == pytest.approx(1 / 6) and m["best_gap_se"] == pytest.approx(1 / 6)  # stdev(1/3, 0) / sqrt 2
    assert m["ranker_gap"] == pytest.approx(1 / 24)
    assert m["agreement"] == 0.0 and m["chance_agreement"] == pytest.approx(1 / 3)
    assert m["spearman"] == pytest.approx(0.5) and m["spearman_sets"] == 1
