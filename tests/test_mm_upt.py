"""MM-UPT: the majority-vote self-reward worked out by hand, labels never read, the digit_sum task, and question
synthesis on the tiny model."""
from __future__ import annotations

import json

import pytest

from mmpost.config import RewardSpec
from mmpost.registry import REWARDS, TASKS
from mmpost.scoring import bind_rewards
from mmpost.tasks.mm_upt import (
    MM_UPT_SUFFIX,
    NO_ANSWER,
    majority_answer,
    mm_upt_label_accuracy,
    mm_upt_majority_vote,
    vote_answer,
)
from mmpost.tasks.mm_upt.synthesize import image_files, main as synthesize_main, synthesis_messages, synthesize_questions
from mmpost.tasks.mm_upt.task import UNSEEN_TRAIN_OFFSET, VALIDATION_OFFSET, scene_split
from mmpost.types import DataError


class LabelSpy(dict):
    """A sample whose every field access raises: a reward that reads it (label or otherwise) fails the test."""

    def _touched(self, *args, **kwargs):
        raise AssertionError("the MM-UPT reward read a sample field")

    __getitem__ = get = __contains__ = keys = items = values = __iter__ = _touched


def test_vote_answer_is_the_last_box_or_none():
    assert vote_answer("first \\boxed{3} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert vote_answer("no box here") == NO_ANSWER == "None"
    assert vote_answer("\\boxed{4} and a cut-off \\boxed{5") == "None"  # the last box never closes


def test_majority_ties_go_to_the_first_seen_answer():
    assert majority_answer(["3", "4", "4", "3"]) == "3"
    assert majority_answer(["4", "3", "3", "4"]) == "4"
    assert majority_answer(["None", "None", "5"]) == "None"
    assert majority_answer(["None", "None", "5"], none_can_win=False) == "5"
    assert majority_answer(["None", "None"], none_can_win=False) is None


def test_reward_by_hand_with_interleaved_groups():
    completions = ["\\boxed{5}", "\\boxed{6}", "\\boxed{5}",   # group 0 rows 0-2 (and row 6)
                   "\\boxed{7}", "no box", "no box",           # group 1: "None" wins 2-1
                   "\\boxed{6}"]                               # group 0 again: 5 and 6 tie 2-2, 5 seen first
    group_ids = [0, 0, 0, 1, 1, 1, 0]
    samples = [LabelSpy() for _ in completions]
    assert mm_upt_majority_vote(completions, samples, group_ids=group_ids) == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    # The improved variant: "None" cannot win, so group 1's only boxed answer (7) wins and unboxed rows get 0.
    assert mm_upt_majority_vote(completions, samples, group_ids=group_ids, none_can_win=False) == [
        1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_equivalent_forms_split_the_vote_but_grade_equal():
    completions = ["\\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "\\boxed{2}"]
    # The vote is on raw strings (\frac{1}{2} wins 2-1-1); grading is math-verify, so 0.5 also scores.
    assert mm_upt_majority_vote(completions, [{}] * 4, group_ids=[0, 0, 0, 0]) == [1.0, 1.0, 1.0, 0.0]


def test_labels_are_never_read():
    labelled = [{"id": "a", "answer": "9"}, {"id": "b", "answer": "9"}]
    unlabelled = [{"id": "a"}, {"id": "b"}]
    completions = ["\\boxed{4}", "\\boxed{4}"]
    # Whatever the label says (or whether there is one), agreement with the majority scores.
    assert mm_upt_majority_vote(completions, labelled, group_ids=[0, 0]) == [1.0, 1.0]
    assert mm_upt_majority_vote(completions, unlabelled, group_ids=[0, 0]) == [1.0, 1.0]
    assert mm_upt_majority_vote(completions, [LabelSpy(), LabelSpy()], group_ids=[0, 0]) == [1.0, 1.0]


def test_registered_group_aware_with_no_format_reward():
    (bound,) = bind_rewards([RewardSpec(name="mm_upt_majority_vote", args={"none_can_win": True})])
    assert bound.wants_groups and REWARDS.get("mm_upt_majority_vote") is mm_upt_majority_vote
    assert bound(["\\boxed{1}", "\\boxed{2}", "\\boxed{2}"], [LabelSpy()] * 3, [3, 3, 3]) == [0.0, 1.0, 1.0]
    task = TASKS.get("digit_sum")()
    assert task.default_rewards == [{"name": "mm_upt_majority_vote", "weight": 1.0}]
    with pytest.raises(ValueError, match="pair up"):
        mm_upt_majority_vote(["\\boxed{1}"], [{}], group_ids=[0, 0])


def test_label_accuracy_is_for_held_out_rows_only():
    samples = [{"answer": "5"}, {"answer": "5"}, {}, {"answer": "0.5"}]
    completions = ["2 + 3 = \\boxed{5}", "\\boxed{6}", "\\boxed{5}", "\\boxed{\\frac{1}{2}}"]
    assert mm_upt_label_accuracy(completions, samples) == [1.0, 0.0, None, 1.0]


def test_digit_sum_hides_train_labels_and_splits_images():
    task = TASKS.get("digit_sum")(train_size=12, heldout_size=6)
    train, heldout = task.load("train"), task.load("heldout")
    assert all("answer" not in row and "numbers" not in row for row in train)
    assert all(row["answer"] == str(sum(row["numbers"])) and len(row["numbers"]) == 2 for row in heldout)
    assert all(1 <= n <= 3 for row in heldout for n in row["numbers"])
    message = task.prompt(train[0])[0]
    assert message["content"][0] == {"type": "image"}
    assert message["content"][1]["text"] == "What is the sum of the numbers shown?" + MM_UPT_SUFFIX
    assert MM_UPT_SUFFIX == "\nPlease reason step by step, and put your final answer within \\boxed{}."
    with pytest.raises(DataError, match="no label"):
        task.target(train[0])
    labelled = TASKS.get("digit_sum")(train_size=2, train_labels=True).load("train")
    first = labelled[0]["numbers"]
    assert task.target(labelled[0]) == f"{first[0]} + {first[1]} = \\boxed{{{first[0] + first[1]}}}"
    assert [r["images"][0].tobytes() for r in task.load("train")] == [r["images"][0].tobytes() for r in train]  # reproducible
    assert scene_split.__doc__ and {r["id"] for r in train}.isdisjoint({r["id"] for r in heldout})


def test_digit_sum_shuffled_reading_order_changes_only_the_demonstration():
    fixed = TASKS.get("digit_sum")(count=3, train_size=40, train_labels=True)
    shuffled = TASKS.get("digit_sum")(count=3, train_size=40, train_labels=True, reading_order="shuffled")
    fixed_rows, shuffled_rows = fixed.load("train"), shuffled.load("train")
    # Same images, numbers and labels: the order is drawn after the image.
    assert [r["images"][0].tobytes() for r in fixed_rows] == [r["images"][0].tobytes() for r in shuffled_rows]
    assert [r["numbers"] for r in fixed_rows] == [r["numbers"] for r in shuffled_rows]
    orders = [r["reading_order"] for r in shuffled_rows]
    assert all(sorted(o) == [0, 1, 2] for o in orders) and len({tuple(o) for o in orders}) > 3
    for row in shuffled_rows:
        a, b, c = (row["numbers"][i] for i in row["reading_order"])
        assert shuffled.target(row) == f"{a} + {b} + {c} = \\boxed{{{a + b + c}}}"
    assert all("reading_order" not in r for r in fixed_rows)
    assert fixed.target(fixed_rows[0]) == " + ".join(map(str, fixed_rows[0]["numbers"])) + f" = \\boxed{{{fixed_rows[0]['answer']}}}"
    assert any(shuffled.target(a) != fixed.target(b) for a, b in zip(shuffled_rows, fixed_rows))
    # Unlabelled (MM-UPT's own) rows carry no order: nothing about the demonstration reaches training.
    assert all("reading_order" not in r for r in TASKS.get("digit_sum")(train_size=4, reading_order="shuffled").load("train"))
    with pytest.raises(ValueError, match="reading_order"):
        TASKS.get("digit_sum")(reading_order="random")


def test_digit_sum_train_offset_gives_rows_the_warm_up_never_read():
    sft = TASKS.get("digit_sum")(count=3, train_size=512, train_labels=True, reading_order="shuffled").load("train")
    # Offset 0 is the default (the rows the warm-up SFT reads); offset k starts at the default's row k.
    shifted = TASKS.get("digit_sum")(count=3, train_size=6, train_labels=True, reading_order="shuffled",
                                     train_offset=5).load("train")
    assert [r["images"][0].tobytes() for r in shifted] == [r["images"][0].tobytes() for r in sft[5:11]]
    assert [r["reading_order"] for r in shifted] == [r["reading_order"] for r in sft[5:11]]
    assert shifted[0]["id"] == sft[5]["id"] == "digit_sum-train-0-00005"

    def images(offset, size, split="train"):
        task = TASKS.get("digit_sum")(count=3, train_size=size, heldout_size=size, train_labels=True, train_offset=offset)
        return {r["images"][0].tobytes() for r in task.load(split)}

    sft_images, unseen, validation = {r["images"][0].tobytes() for r in sft}, images(UNSEEN_TRAIN_OFFSET, 256), images(VALIDATION_OFFSET, 256)
    assert len(unseen) == len(validation) == 256  # no image repeats within a set either
    assert sft_images.isdisjoint(unseen) and sft_images.isdisjoint(validation) and unseen.isdisjoint(validation)
    # The held-out split ignores the offset (its first 128 questions stay the earlier sessions' 128) and shares no image.
    heldout = images(VALIDATION_OFFSET, 128, "heldout")
    assert heldout == images(0, 128, "heldout") and heldout.isdisjoint(validation | unseen | sft_images)
    assert images(0, 512, "heldout") >= heldout
    # Unlabelled rows at an offset still hide the sum.
    assert all("answer" not in r for r in TASKS.get("digit_sum")(train_size=3, train_offset=VALIDATION_OFFSET).load("train"))
    with pytest.raises(ValueError, match="train_offset"):
        TASKS.get("digit_sum")(train_offset=-1)


def test_digit_sum_reads_the_users_unlabelled_rows(tmp_path):
    (tmp_path / "img.png").write_bytes(b"")  # existence is enough for loading; decoding is the modality's job
    rows = tmp_path / "train.jsonl"
    rows.write_text(json.dumps({"id": "q1", "problem": "What is 2 + 2?", "images": ["img.png"]}) + "\n")
    task = TASKS.get("digit_sum")(path=str(rows))
    loaded = task.load("train")
    assert loaded[0]["problem"] == "What is 2 + 2?" and "answer" not in loaded[0]
    with pytest.raises(ValueError, match="heldout_path"):
        task.load("heldout")


def test_synthesize_questions_on_the_tiny_model(tiny_vl_dir, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    images = tmp_path / "images"
    images.mkdir()
    for index, row in enumerate(TASKS.get("digit_sum")(train_size=2).load("train")):
        row["images"][0].save(images / f"img{index}.png")
    (images / "notes.txt").write_text("not an image")  # not an image suffix: ignored
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    rows = synthesize_questions(model, processor, image_files(images), max_new_tokens=8, seed=0)
    assert [r["source_image"] for r in rows] == ["img0.png", "img1.png"]
    assert all(r["mode"] == "direct" and isinstance(r["problem"], str) for r in rows)
    assert synthesis_messages("in_context", "What is 1 + 2?")[0]["content"][1]["text"].startswith(
        "Here is a question about this image: What is 1 + 2?")
    with pytest.raises(ValueError, match="original question"):
        synthesis_messages("in_context")

    out = tmp_path / "synthetic.jsonl"
    assert synthesize_main(["--model", str(tiny_vl_dir), "--images", str(images), "--out", str(out),
                            "--max-new-tokens", "8"]) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) <= 2 and all(r["problem"] and r["images"][0].endswith(".png") for r in written)
    if written:  # the task reads the synthesized rows back (an empty generation is dropped by the command)
        assert [r["problem"] for r in TASKS.get("digit_sum")(path=str(out)).load("train")] == [r["problem"] for r in written]
    with pytest.raises(DataError, match="no image files"):
        image_files(tmp_path)


def test_random_control_is_a_label_free_coin():
    from mmpost.tasks.mm_upt.rewards import mm_upt_random_control

    texts = [f"{i % 7} + 1 = \\boxed{{{i % 7 + 1}}}" for i in range(400)]
    spies = [LabelSpy() for _ in texts]
    scores = mm_upt_random_control(texts, spies)
    assert set(scores) == {0.0, 1.0} and 160 < sum(scores) < 240  # a fair coin: 200 ± 10 expected, ±4 SD allowed
    assert scores == mm_upt_random_control(texts, spies)  # reproducible
    assert scores != mm_upt_random_control(texts, spies, seed=1)
    # Same text at two positions may score differently: the coin is not a function of the answer.
    assert len({(t, s) for t, s in zip(texts, scores)}) > 7
    assert REWARDS.get("mm_upt_random_control") is mm_upt_random_control
    with pytest.raises(ValueError, match="pair|samples"):
        mm_upt_random_control(["a"], [])


def test_consistent_accuracy_pays_a_right_box_only_when_it_follows_from_the_reading():
    from mmpost.tasks.mm_upt.rewards import digit_sum_consistent_accuracy, mm_upt_label_accuracy, worked_reading

    sample = {"answer": "9", "numbers": [2, 3, 4]}
    texts = ["4 + 2 + 3 = \\boxed{9}",   # right, read in another order: paid
             "2 + 3 + 3 = \\boxed{9}",   # right box, misread (sums to 8): not paid
             "2 + 7 = \\boxed{9}",       # sums to 9 but two numbers for an image of three: not paid
             "\\boxed{9}",               # no reading at all: not paid
             "2 + 3 + 4 = \\boxed{8}",   # read right, added wrong: the box is wrong
             "2 + 3 + 4 = 9"]             # no box
    assert mm_upt_label_accuracy(texts, [sample] * 6) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert digit_sum_consistent_accuracy(texts, [sample] * 6) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # A user's row without `numbers`: any count of numbers, still their sum; a row without a label is not scored.
    assert digit_sum_consistent_accuracy(["2 + 7 = \\boxed{9}", "2 + 6 = \\boxed{9}"], [{"answer": "9"}] * 2) == [1.0, 0.0]
    assert digit_sum_consistent_accuracy(["1 + 1 = \\boxed{2}"], [{"numbers": [1, 1]}]) == [None]
    assert worked_reading("1 + 13 + 2 = \\boxed{16}") == (1, 13, 2) and worked_reading("\\boxed{3}") is None
    assert REWARDS.get("digit_sum_consistent_accuracy") is digit_sum_consistent_accuracy
    with pytest.raises(ValueError, match="completions but"):
        digit_sum_consistent_accuracy(["a"], [])


def test_shuffled_warm_starts_pass_their_digit_range_to_the_sft(monkeypatch):
    # The session-9 GRPO warm start is the 3-number SFT with digits 1-5 (its curve: runs of benchmarks/mm_upt_sft_curve.py
    # with `{count: 3, high: 5, reading_order: shuffled}`); the session-8 one keeps the task's default range.
    from mmpost.registry import MODEL_ZOO
    from mmpost.tasks.mm_upt import warmup

    calls = []
    monkeypatch.setattr(warmup, "sft_warm_start", lambda out_dir, **kwargs: calls.append(kwargs))
    MODEL_ZOO.get("tiny-qwen2.5-vl-mmupt-c3sh5-350")("unused")
    MODEL_ZOO.get("tiny-qwen2.5-vl-mmupt-c4s-700")("unused")
    assert calls[0]["task_args"] == {"train_labels": True, "count": 3, "reading_order": "shuffled", "high": 5}
    assert calls[0]["steps"] == 350 and calls[0]["lr"] == 1e-3 and calls[0]["seed"] == 0
    assert calls[1]["task_args"] == {"train_labels": True, "count": 4, "reading_order": "shuffled"} and calls[1]["steps"] == 700
    assert warmup.build_warm_mmupt_model_c3sh5_350.zoo_version == "theta10:c3-h5-shuffled:350:0.001"
