"""Step-level GRPO groups from search trees (PROPA): label transform, group filter, the hand-worked tree's groups,
and the "propa" experience source end to end with a scripted rollout backend (rows, labels, rewards, SFT rows)."""
import math
import re

import pytest
import torch

from mmpost.search.step_groups import keep_group, log_boost, needs_demonstration, step_groups
from test_mcts import hand_tree


def test_log_boost_by_hand():
    assert log_boost(0.0) == 0.0 and log_boost(-0.3) == 0.0 and log_boost(1.0) == 1.0 and log_boost(1.5) == 1.0
    assert log_boost(0.5) == pytest.approx(math.log(6) / math.log(11)) == pytest.approx(0.7472217)
    assert log_boost(2 / 3) == pytest.approx(0.8494457)
    assert log_boost(0.1) == pytest.approx(math.log(2) / math.log(11))


@pytest.mark.parametrize("labels,kept", [([0, 0, 0, 0], False), ([1, 1, 1, 1], False), ([0.5, 0.55, 0.5, 0.5], False),
                                          ([0, 0.1, 0, 0], True), ([0.7472, 0.8494], True), ([0.7472, 0.8400], False), ([], False)])
def test_group_filter(labels, kept):
    assert keep_group(labels) is kept


def test_groups_of_the_hand_worked_tree():
    tree, _, _ = hand_tree()
    groups = step_groups(tree)
    # root: A q = 2/3, B q = 1/2 -> (0.8494, 0.7472), spread 0.102 >= 0.1; A: A1 1/1, D 0/1; B: B1 0/1, C 1/1.
    assert [(g.node, g.steps, g.children) for g in groups] == [(0, (), (1, 2)), (1, ("A",), (5, 6)), (2, ("B",), (3, 4))]
    assert groups[0].labels == pytest.approx((0.8494457, 0.7472217))
    assert groups[1].labels == (1.0, 0.0) and groups[2].labels == (0.0, 1.0)
    assert [g.node for g in step_groups(tree, min_spread=0.2)] == [1, 2]  # the root's spread 0.102 is too small
    assert not needs_demonstration(tree)


def test_unsolved_tree_has_no_groups_and_needs_a_demonstration():
    tree, _, _ = hand_tree()
    for node in tree.nodes:
        node.value = 0.0
    assert step_groups(tree) == [] and needs_demonstration(tree)


# -- the experience source with a scripted backend ---------------------------------------------------------
class ScriptedBackend:
    """Reads the steps from the prompt text ("First step:" / "Existing steps: ... Next step:") and answers from a
    script keyed by the joined steps; greedy calls use `greedy`."""

    def __init__(self, tokenizer, eos, expansions, greedy):
        self.tokenizer, self.eos, self.expansions, self.greedy = tokenizer, eos, expansions, greedy

    def generate(self, prompts, samples, params):
        from mmpost.rollout.base import GenerationResult

        ids = []
        for prompt in prompts:
            match = re.search(r"Existing steps: (.*) Next step:", prompt.text)
            key = match.group(1) if match else ""
            texts = self.greedy[key] if params.greedy else self.expansions[key]
            texts = [texts] if isinstance(texts, str) else texts
            assert len(texts) == params.n
            ids += [self.tokenizer(t, add_special_tokens=False)["input_ids"] + [self.eos] for t in texts]
        return GenerationResult(ids, None)

    def sync_weights(self, model):
        pass


@pytest.fixture(scope="module")
def policy(tiny_vl_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmpost.modalities.image import ImageModality
    from mmpost.policy import TokenPolicy
    from mmpost.tasks.propa import PropaDigitsTask

    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir)
    return TokenPolicy(model, AutoProcessor.from_pretrained(tiny_vl_dir), PropaDigitsTask(question_style="short"), ImageModality())


def collect(policy, samples, expansions, greedy, **source_args):
    from mmpost.experience import StepContext
    from mmpost.rollout.base import SamplingParams
    from mmpost.search.source import PropaSource
    from mmpost.scoring import bind_rewards, score_batch
    from mmpost.config import RewardSpec

    def spaced(table):  # test_mcts keys join steps with " | "; a prompt joins them with " "
        return {k.replace(" | ", " "): v for k, v in table.items()}

    backend = ScriptedBackend(policy.tokenizer, policy.eos_token_ids[0], spaced(expansions), spaced(greedy))
    ctx = StepContext(policy, backend, SamplingParams(n=2, max_new_tokens=16), 1, "propa_answer")
    source = PropaSource(**{"iterations": 3, "num_children": 2, "max_depth": 3, "system_prompt": "", **source_args})
    batch = source.collect(ctx, samples, [])
    batch.reward_parts, _ = score_batch(batch, bind_rewards([RewardSpec(name="propa_step_label"), RewardSpec(name="propa_answer", weight=0.0)]))
    return source.after_rewards(ctx, batch)


def test_propa_source_rows_are_the_tree_groups_plus_sft_for_unsolved_questions(policy, tmp_path):
    from mmpost.tasks.propa import PropaDigitsTask
    from mmpost.search.source import load_trees

    from test_mcts import SCRIPT

    solved, unsolved = PropaDigitsTask(question_style="short").load("train", size=2)
    solved = {**solved, "answer": "5"}  # the script's correct answer
    unsolved = {**unsolved, "answer": "99"}  # never produced: its tree has root value 0
    batch, stats = collect(policy, [solved, unsolved], SCRIPT.expansions, SCRIPT.greedy, tree_dir=str(tmp_path))
    policy_rows = [i for i, s in enumerate(batch.sources) if s == "policy"]
    sft_rows = [i for i, s in enumerate(batch.sources) if s == "expert"]
    assert [batch.completions[i] for i in policy_rows] == ["A", "B", "So the final answer is 5.", "D", "The final answer is 4.", "C"]
    assert batch.group_ids[policy_rows].tolist() == [0, 0, 1, 1, 2, 2]
    labels = batch.reward_parts["propa_step_label"][policy_rows]
    assert labels.tolist() == pytest.approx([0.8494457, 0.7472217, 1.0, 0.0, 0.0, 1.0])
    assert batch.reward_parts["propa_answer"][policy_rows].tolist() == [0, 0, 1, 0, 0, 0]
    assert [batch.samples[int(batch.prompt_index[i])]["propa_steps"] for i in policy_rows] == [[], [], ["A"], ["A"], ["B"], ["B"]]
    assert "Existing steps: A Next step:" in batch.prompts[int(batch.prompt_index[policy_rows[2]])].text
    # the unsolved question's reference chain, one SFT row per step, each in its own group
    reference = unsolved["steps"]
    assert [batch.completions[i] for i in sft_rows] == reference
    assert bool(batch.is_sft[sft_rows].all()) and not bool(batch.is_sft[policy_rows].any())
    assert torch.isnan(batch.reward_parts["propa_step_label"][sft_rows]).all()
    assert len(set(batch.group_ids[sft_rows].tolist())) == len(reference)
    assert stats["propa/groups"] == 3 and stats["propa/sft_questions"] == 1 and stats["propa/solved_fraction"] == 0.5
    saved = load_trees(tmp_path / "round_00001_rank0.jsonl")
    assert [i for i, _ in saved] == [solved["id"], unsolved["id"]] and saved[0][1].root.visits == 5


def test_propa_source_without_interleaved_sft_still_returns_a_row(policy):
    from mmpost.tasks.propa import PropaDigitsTask

    sample = {**PropaDigitsTask(question_style="short").load("train", size=1)[0], "answer": "99"}
    batch, stats = collect(policy, [sample], {"": ["The final answer is 1.", "The final answer is 2."]}, {},
                           interleaved_sft=False)
    assert len(batch) == 1 and batch.sources == ["policy"] and stats["propa/groups"] == 0  # the zero-advantage stand-in


# -- duplicate step texts in one group (ours: "merge" / "drop") ---------------------------------------------
def _duplicate_tree():
    """Root with 4 children: "A" (N 2, W 2), " A" (N 0: unvisited, label 0 officially), "B" (N 2, W 0), "A" (N 1,
    W 0). Officially "A" gets labels 1, 0 and 0 in one group."""
    from mmpost.search.mcts import SearchTree

    tree = SearchTree(answer="1")
    for text, n, w in (("A", 2, 2.0), (" A", 0, 0.0), ("B", 2, 0.0), ("A", 1, 0.0)):
        child = tree.add_child(0, text)
        tree.nodes[child].visits, tree.nodes[child].value = n, w
    tree.root.visits, tree.root.value = 5, 2.0
    return tree


def test_merge_duplicate_children_by_hand():
    from mmpost.search.step_groups import has_conflicting_duplicates, merge_duplicate_children

    assert merge_duplicate_children(["A", " A", "B", "A"], [2, 0, 2, 1], [2.0, 0.0, 0.0, 0.0]) == [(0, 3, 2.0), (2, 2, 0.0)]
    assert merge_duplicate_children(["x", "y"], [0, 1], [0.0, 1.0]) == [(0, 0, 0.0), (1, 1, 1.0)]
    assert has_conflicting_duplicates(["A", " A", "B"], [1.0, 0.0, 0.0])
    assert not has_conflicting_duplicates(["A", "A", "B"], [0.5, 0.5, 0.0])
    assert not has_conflicting_duplicates(["A", "B"], [1.0, 0.0])


def test_duplicate_steps_options_on_a_hand_worked_group():
    tree = _duplicate_tree()
    official = step_groups(tree)
    assert [g.children for g in official] == [(1, 2, 3, 4)] and official[0].labels == (1.0, 0.0, 0.0, 0.0)
    merged = step_groups(tree, duplicate_steps="merge")
    # "A": q = 2/3 -> ln(1 + 20/3)/ln 11 = 0.8494; "B": q = 0 -> 0; the first copy's node carries the tokens.
    assert [g.children for g in merged] == [(1, 3)]
    assert merged[0].labels == pytest.approx((0.8494457, 0.0))
    pooled = step_groups(tree, duplicate_steps="pool")  # every copy of "A" gets the pooled label; all 4 kept
    assert [g.children for g in pooled] == [(1, 2, 3, 4)]
    assert pooled[0].labels == pytest.approx((0.8494457, 0.8494457, 0.0, 0.8494457))
    assert step_groups(tree, duplicate_steps="drop") == []
    with pytest.raises(ValueError, match="duplicate_steps"):
        step_groups(tree, duplicate_steps="squash")


def test_merge_leaves_a_group_of_distinct_texts_as_it_was():
    tree, _, _ = hand_tree()
    for option in ("merge", "pool", "drop"):
        assert step_groups(tree, duplicate_steps=option) == step_groups(tree)
