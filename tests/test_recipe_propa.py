"""recipes/propa.yaml: the tiny CPU preset runs a round end to end, and a run stopped between rounds and resumed
repeats the next round's search exactly (same metrics, same weights) as an uninterrupted run."""
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mmpost.config import load_config
from mmpost.trainer import train
from conftest import REPO


@pytest.fixture(scope="module")
def warm_propa_dir(tmp_path_factory):
    from mmpost.registry import MODEL_ZOO

    return MODEL_ZOO.get("tiny-qwen2.5-vl-propa")(tmp_path_factory.mktemp("zoo") / "propa", steps=40)


def preset(model_dir, output_dir, **extra):
    """The tiny CPU preset named in recipes/propa.md."""
    values = {"model.path": str(model_dir), "model.zoo": "null", "train.output_dir": str(output_dir), "train.threads": 1,
              "train.progress": "false", "data.prompts_per_step": 2, "algorithm.source_args.iterations": 3,
              "algorithm.source_args.num_children": 2, "algorithm.source_args.max_depth": 4,
              "algorithm.source_args.tree_dir": str(output_dir / "trees"), "train.steps": 1,
              "data.heldout_size": 2, "optim.lr": 1e-3}  # the step these machinery tests were written for
    values.update(extra)
    return load_config(REPO / "recipes" / "propa.yaml", [f"{k}={v}" for k, v in values.items()])


def metrics(output_dir):
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/") or k == "perf/lr"} for r in rows]


def test_tiny_preset_runs_one_round(warm_propa_dir, tmp_path):
    summary = train(preset(warm_propa_dir, tmp_path / "run"))
    assert summary["steps"] == 1
    # the held-out check is step-wise greedy decoding (the task's evaluate_policy): a fraction of 2 questions
    assert summary["heldout_accuracy_before"] in (0.0, 0.5, 1.0) and summary["heldout_accuracy_after"] in (0.0, 0.5, 1.0)
    [row] = metrics(tmp_path / "run")
    assert {"propa/groups", "propa/sft_questions", "propa/solved_fraction", "reward/propa_step_label", "loss/total"} <= set(row)
    assert row["propa/groups"] + row["propa/sft_questions"] > 0
    assert (tmp_path / "run" / "trees" / "round_00001_rank0.jsonl").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_1" / "model" / "model.safetensors").is_file()


def test_resumed_run_repeats_the_interrupted_rounds_search(warm_propa_dir, tmp_path):
    straight = tmp_path / "straight"
    train(preset(warm_propa_dir, straight, **{"train.steps": 3}))
    resumed = tmp_path / "resumed"
    assert train(preset(warm_propa_dir, resumed, **{"train.steps": 3, "train.save_every": 1, "train.stop_after": 1})) == {"stopped_at": 1}
    train(preset(warm_propa_dir, resumed, **{"train.steps": 3, "train.save_every": 1, "train.resume": "auto"}))
    a, b = metrics(straight), metrics(resumed)
    assert [r["step"] for r in b] == [1, 2, 3] and a == b
    for step in (2, 3):  # the searched trees of the rounds after the interruption are identical
        assert (straight / "trees" / f"round_0000{step}_rank0.jsonl").read_text() == (resumed / "trees" / f"round_0000{step}_rank0.jsonl").read_text()
    wa = load_file(str(straight / "checkpoints" / "step_3" / "model" / "model.safetensors"))
    wb = load_file(str(resumed / "checkpoints" / "step_3" / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def _root_step_logprobs(model_dir, sample, steps):
    """Summed log-probs of each candidate first step (with its end-of-turn token) under the model at `model_dir`."""
    import torch

    from mmpost.builder import build_run
    from mmpost.experience import BatchBuilder, StepContext
    from mmpost.search.source import PolicyStepProposer

    config = load_config(REPO / "recipes" / "propa.yaml", [f"model.path={model_dir}", "model.zoo=null", "train.threads=1",
                                                           "train.progress=false", "eval.heldout=false",
                                                           "train.output_dir=/tmp/mmpost-propa-logprobs"])
    run = build_run(config)
    proposer = PolicyStepProposer(run.policy, run.backend, [sample], max_new_tokens=28, system_prompt="")
    prompt = proposer.encode(0, [])
    builder = BatchBuilder([sample], [prompt])
    for step in steps:
        builder.add_row(0, 0, run.policy.encode_target(step), source="policy", is_sft=False)
    batch = builder.build(StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward))
    with torch.no_grad():
        logprobs, _ = run.settings.policy.logprobs(run.model, batch, torch.arange(len(steps)),
                                                   **run.settings.passes.pass_options(with_grad=False))
    return (logprobs * batch.completion_mask).sum(1)


def test_propa_rounds_move_probability_to_the_steps_the_search_labelled_better(warm_propa_dir, tmp_path, monkeypatch):
    """The learning PROPA relies on, checked directly: the search is replaced by a hand-made tree per question (the
    root's 4 children, two with W/N = 1 and two with 0), and 3 rounds of the recipe's step-level GRPO (no SFT) must
    raise the log-probability of the right-labelled steps relative to the wrong-labelled ones."""
    from mmpost.search import source as propa_source
    from mmpost.search.mcts import SearchTree, backpropagate

    steps = ["The digits are 1, 2.", "The digits are 3, 4.", "The digits are 5, 6.", "The digits are 7, 8."]

    def hand_made_search(self, ctx, samples):
        proposer = propa_source._proposer(ctx, samples, self.step_max_new_tokens, self.system_prompt)
        trees = []
        for sample in samples:
            tree = SearchTree(answer=str(sample["answer"]))
            for text, value in zip(steps, (1.0, 1.0, 0.0, 0.0)):
                backpropagate(tree, tree.add_child(0, text, ctx.policy.encode_target(text)), value)
            trees.append(tree)
        return trees, proposer

    monkeypatch.setattr(propa_source.PropaSource, "search_trees", hand_made_search)
    run = tmp_path / "run"
    summary = train(preset(warm_propa_dir, run, **{"train.steps": 3, "algorithm.source_args.interleaved_sft": "false",
                                                     "algorithm.kl_coef": 0.0, "eval.heldout": "false"}))
    from mmpost.tasks.propa import PropaDigitsTask

    question = PropaDigitsTask(question_style="short").load("train", size=1)[0]
    before = _root_step_logprobs(warm_propa_dir, question, steps)
    after = _root_step_logprobs(Path(summary["checkpoint"]) / "model", question, steps)
    change = after - before
    assert [r["propa/groups"] for r in metrics(run)] == [2.0, 2.0, 2.0]  # one group per question per round
    assert float(change[:2].mean() - change[2:].mean()) > 1.0, change.tolist()
