"""Run diagnostics (mmpost/diagnostics.py): the math against hand-computed values, and what a real run logs."""
import json
import math

import pytest
import torch

from conftest import REPO, tiny_overrides
from mmpost.config import load_config
from mmpost.diagnostics import (
    agreement,
    clipped_counts,
    contested,
    majority_vote_correct,
    pass_at_k,
    sampled_accuracy,
    token_entropy,
    token_kl,
    zero_variance_group_counts,
)
from mmpost.trainer import train


def test_entropy_by_hand():
    # uniform over 4: ln 4; two equal entries and a masked one (-inf): ln 2; one-hot: 0
    log_dist = torch.log(torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(token_entropy(log_dist), torch.tensor([math.log(4), math.log(2), 0.0]))
    # p = (0.7, 0.2, 0.1): -(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1) = 0.80182
    assert float(token_entropy(torch.log(torch.tensor([0.7, 0.2, 0.1])))) == pytest.approx(0.801819, abs=1e-5)


def test_kl_by_hand():
    p = torch.log(torch.tensor([0.5, 0.5, 0.0]))
    q = torch.log(torch.tensor([0.25, 0.75, 0.0]))
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln 2 + 0.5 ln(2/3) = 0.143841
    assert float(token_kl(p, q)) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-6)
    assert float(token_kl(p, p)) == 0.0


def test_zero_variance_groups_counted_per_group():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0, 2.0, 5.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3])  # groups 0 and 2 are flat; a singleton (3) is flat too
    assert zero_variance_group_counts(rewards, groups) == (3.0, 4.0)


def test_clipped_completions_counted_by_hand():
    """A row is cut when it fills the limit (4) without an end token. Ids 2 and 9 end a turn, and 9 is also the pad
    (as Qwen's <|endoftext|>), so the padding after a cut row must not read as its end: the mask decides."""
    ids = torch.tensor([
        [5, 6, 2, 9, 9],  # ended at its 3rd token
        [5, 6, 7, 8, 9],  # cut: 4 tokens, no end token (then padded with 9)
        [5, 6, 7, 2, 9],  # ended exactly at the limit
        [5, 6, 7, 8, 9],  # cut as well
    ])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]], dtype=torch.float)
    assert clipped_counts(ids, mask, (2, 9), max_new_tokens=4) == (2.0, 4.0)
    assert clipped_counts(ids, mask, (2, 9), max_new_tokens=5) == (0.0, 4.0)  # nothing filled a limit of 5


def test_a_run_whose_limit_cuts_its_answers_says_so(warm_vl_dir, tmp_path, caplog):
    """One new token cannot hold a shapes answer and its end token, so every sampled completion is cut: the metric
    says 1.0 and the run warns once, naming the setting to raise."""
    out = tmp_path / "cut"
    with caplog.at_level("WARNING", logger="mmpost.diagnostics"):
        train(load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(warm_vl_dir, out, **{
            "train.steps": 2, "rollout.max_new_tokens": 1, "eval.heldout": "false"})))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["diag/clipped_ratio"] for r in records] == [1.0, 1.0]
    warnings = [r.getMessage() for r in caplog.records if "rollout.max_new_tokens=1" in r.getMessage()]
    assert len(warnings) == 1 and "16 of 16" in warnings[0]


def test_agreement_pass_at_k_and_majority_by_hand():
    assert agreement([1.0, 0.0, 1.0, None], [1.0, 1.0, 0.0, 1.0]) == pytest.approx(1 / 3)
    scores = [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, None]]
    assert pass_at_k(scores) == pytest.approx(2 / 3)
    assert sampled_accuracy(scores) == pytest.approx(3 / 8)
    assert majority_vote_correct(["b", "a", "a"], [1.0, 0.0, 0.0]) == 0.0  # "a" wins and is wrong
    assert majority_vote_correct(["a", "b", "b", "a"], [1.0, 0.0, 0.0, 1.0]) == 1.0  # tie: the first seen, "a"
    assert contested(["a", "b", "a"]) and not contested(["7", "7", "7"])  # only disagreeing groups get a signal


def test_a_run_logs_its_diagnostics(warm_vl_dir, tmp_path):
    """Step 1 samples from the warm start itself, so its KL to the start is 0; after an update it is not. The
    entropy is a per-token entropy (between 0 and ln V), and pass@k >= sampled accuracy."""
    out = tmp_path / "grpo"
    summary = train(load_config(REPO / "recipes" / "grpo.yaml", tiny_overrides(warm_vl_dir, out, **{"train.steps": 3})))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["diag/kl_to_start"] == pytest.approx(0.0, abs=1e-6)
    assert records[-1]["diag/kl_to_start"] > 1e-4
    vocabulary = json.loads((warm_vl_dir / "config.json").read_text())["text_config"]["vocab_size"]
    for record in records:
        assert 0.0 < record["diag/entropy"] < math.log(vocabulary)
        assert 0.0 <= record["diag/zero_variance_group_fraction"] <= 1.0
        assert 0.0 <= record["diag/clipped_ratio"] <= 1.0
        assert "loss/clip_fraction" in record and "reward/shapes_accuracy" in record
    for when in ("before", "after"):
        assert summary[f"heldout_pass_k_{when}"] == 4  # the group size
        assert summary[f"heldout_pass_at_k_{when}"] >= summary[f"heldout_sampled_accuracy_{when}"]
        assert 0.0 <= summary[f"heldout_majority_accuracy_{when}"] <= 1.0
        assert 0.0 <= summary[f"heldout_contested_fraction_{when}"] <= 1.0


def test_label_free_reward_is_checked_against_the_hidden_labels(tiny_vl_dir, tmp_path):
    """MM-UPT trains on the vote only; the diagnostics grade the same rollouts against the hidden labels (which the
    rows keep as `hidden_answer`, never `answer`) and count how often the vote agrees with them."""
    from mmpost.builder import build_run
    from mmpost.diagnostics import RunDiagnostics
    from mmpost.experience import StepContext
    from mmpost.scoring import score_batch

    run = build_run(load_config(REPO / "recipes" / "mm_upt.yaml", tiny_overrides(tiny_vl_dir, tmp_path / "run", **{
        "data.prompts_per_step": 2, "rollout.num_generations": 3, "eval.heldout": "false", "eval.diagnostics_every": 0,
        "data.task_args.train_size": 4})))
    samples = [run.modality.decode(run.train_rows[i], None) for i in (0, 1)]
    assert all("answer" not in s for s in samples)
    batch = run.source.collect(StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward),
                               samples, run.policy.encode_prompts(samples))
    truth = [s["hidden_answer"] for s in samples]
    wrong = [str(int(t) + 1) for t in truth]
    # group 0: two right, one wrong (the vote is right); group 1: two wrong, one right (the vote is wrong)
    batch.completions = [f"\\boxed{{{a}}}" for a in (truth[0], truth[0], wrong[0], wrong[1], wrong[1], truth[1])]
    batch.reward_parts, _ = score_batch(batch, run.rewards)
    assert batch.reward_parts["mm_upt_majority_vote"].tolist() == [1, 1, 0, 1, 1, 0]
    metrics = RunDiagnostics(run).step_metrics(run, batch, step=1)
    assert metrics["diag/truth_accuracy"] == pytest.approx(3 / 6)
    # the vote agrees with the truth on rows 0, 1, 2 (group 0) and on none of group 1
    assert metrics["diag/reward_truth_agreement/mm_upt_majority_vote"] == pytest.approx(3 / 6)
    assert "diag/entropy" not in metrics  # diagnostics_every=0 turns the distribution pass off


def test_label_logprob_is_the_sft_loss_per_label(tiny_vl_dir, tmp_path):
    """diag/label_logprob (log pi(y*|q) summed over the label's tokens, mean over labels) read against the update's
    own SFT loss on the same rows and weights: token-mean NLL x label tokens / labels = -label_logprob. Per kind, the
    labels of that kind only; a kind with no label in the step is logged as NaN, not left out."""
    from mmpost.builder import build_run
    from mmpost.diagnostics import RunDiagnostics
    from mmpost.experience import StepContext
    from mmpost.update import StepWeights, micro_batch_loss, normalisers

    run = build_run(load_config(REPO / "recipes" / "sft.yaml", tiny_overrides(tiny_vl_dir, tmp_path / "run", **{
        "eval.heldout": "false", "data.task_args.train_size": 6})))
    samples = [run.modality.decode(run.train_rows[i], None) for i in (0, 1, 3)]  # kinds color, count, color
    assert [s["kind"] for s in samples] == ["color", "count", "color"]
    batch = run.source.collect(StepContext(run.policy, run.backend, run.sampling, 1, run.task.accuracy_reward),
                               samples, run.policy.encode_prompts(samples))
    metrics = RunDiagnostics(run).step_metrics(run, batch, step=1)
    rows = torch.arange(len(batch))
    norms = normalisers(batch, rows)
    _, parts = micro_batch_loss(run.model, None, batch, rows, run.plan.loss, norms, StepWeights())
    assert metrics["diag/label_logprob"] == pytest.approx(-parts["loss/sft"] * norms["sft_tokens"] / 3, rel=1e-4)
    colour = torch.tensor([0, 2])
    norms = normalisers(batch, colour)
    _, parts = micro_batch_loss(run.model, None, batch, colour, run.plan.loss, norms, StepWeights())
    assert metrics["diag/label_logprob/color"] == pytest.approx(-parts["loss/sft"] * norms["sft_tokens"] / 2, rel=1e-4)
    assert metrics["diag/label_logprob"] < 0 and metrics["diag/label_logprob/count"] < 0
    assert math.isnan(metrics["diag/label_logprob/position"])
