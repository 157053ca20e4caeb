"""benchmarks/mm_upt_diagnosis.py: the numbers the MM-UPT diagnosis rests on (the vote's margin over greedy, the vote
on contested digit readings, greedy flips), worked out by hand on three prompts."""
from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from mm_upt_diagnosis import digits_read, flips, markdown, prompt_record, recital, summarise, vote_push_on_readings  # noqa: E402


def _texts(reads: list[tuple[int, int]]) -> list[str]:
    return [f"{a} + {b} = \\boxed{{{a + b}}}" for a, b in reads]


def _records(second_greedy: tuple[int, int] = (2, 1)) -> list[dict]:
    return [
        # A "2" read as "3" by 6 of 10 samples and by greedy: the vote is wrong, and the reading contested.
        prompt_record((2, 3), "5", _texts([(3, 3)])[0], _texts([(3, 3)] * 6 + [(2, 3)] * 4)),
        # A "2" read right by 7 of 10: the vote is right.
        prompt_record((2, 1), "3", _texts([second_greedy])[0], _texts([(2, 1)] * 7 + [(3, 1)] * 3)),
        # Unanimous and right: no gradient under a vote reward.
        prompt_record((1, 1), "2", _texts([(1, 1)])[0], _texts([(1, 1)] * 10)),
    ]


def test_digits_read_takes_the_worked_answer():
    assert digits_read("2 + 3 = \\boxed{5}") == (2, 3)
    assert digits_read("3+1=\\boxed{4}") == (3, 1)
    assert digits_read("\\boxed{5}") is None


def test_summary_by_hand():
    s = summarise(_records())
    assert s["greedy_accuracy"] == 2 / 3 and s["majority_accuracy"] == 2 / 3 and s["vote_margin"] == 0.0
    assert s["sampled_accuracy"] == (4 + 7 + 10) / 30
    assert s["contested_fraction"] == 2 / 3 and s["contested_vote_accuracy"] == 1 / 2
    assert s["unanimous_vote_accuracy"] == 1.0 and s["pass_at_k"] == 1.0
    # Only the first number's "2" is read differently across samples: right on one prompt, wrong on the other.
    assert s["contested_reading_vote"] == {"2 at 1": {"right": 1, "contested": 2, "accuracy": 0.5}}
    assert s["contested_readings_voted_for"] == {"2": 1, "3": 1}
    assert s["greedy_first_digit_misread"] == 1 / 3 and s["greedy_second_digit_misread"] == 0.0
    assert s["digit_confusion"] == {"1->1": 3, "2->2": 1, "2->3": 1, "3->3": 1}
    assert s["mode_answer"] == "2" and s["mode_share"] == 10 / 30
    assert s["answer_marginal"] == {"2": 10 / 30, "3": 7 / 30, "4": 3 / 30, "5": 4 / 30, "6": 6 / 30}


def test_flips_split_by_the_reference_contest():
    reference, other = _records(), _records(second_greedy=(3, 1))  # the second prompt's greedy turns to "3 + 1"
    f = flips(reference, other)
    assert f["contested"] == {"prompts": 2, "right_to_wrong": 1, "wrong_to_right": 0, "reference_vote_right": 1}
    assert f["unanimous"] == {"prompts": 1, "right_to_wrong": 0, "wrong_to_right": 0, "reference_vote_right": 1}
    assert f["lost_to_answer"] == {"4": 1} and f["lost_truth"] == {"3": 1}
    assert f["lost_where_reference_vote_was_wrong"] == 0 and f["lost_to_reference_vote"] == 0


def test_markdown_names_every_model_and_reading():
    report = {"k": 10, "temperature": 0.7, "task_args": {}, "models": {
        "warm": {"train": summarise(_records()), "heldout": summarise(_records())},
        "after": {"train": summarise(_records((3, 1))), "heldout": summarise(_records((3, 1))),
                  "flips_from_warm": {"train": flips(_records(), _records((3, 1)))}}}}
    text = markdown(report)
    assert "| warm | train | 0.667 |" in text and "| after | train | 0.333 |" in text
    assert "| warm | 1/2 | 1/2 (0.50) | 2: 1, 3: 1 |" in text
    assert "| after | train | 1 / 0 (of 2) | 0 / 0 (of 1) | 4: 1 | 3: 1 |" in text


def test_three_numbers_and_shuffled_readings_by_hand():
    assert digits_read("1 + 3 + 2 = \\boxed{6}") == (1, 3, 2)
    # Truth (1, 2, 3) = 6. Greedy reads "3 + 3 + 2" (a duplicate): wrong. The samples read it in several orders;
    # 6 of 10 are right, two duplicate a 3 (8), one skips the 1 (5), one reads all three but sums them wrong (7).
    texts = (["1 + 2 + 3 = \\boxed{6}"] * 3 + ["3 + 1 + 2 = \\boxed{6}"] * 2 + ["2 + 3 + 1 = \\boxed{6}"]
             + ["3 + 3 + 2 = \\boxed{8}"] * 2 + ["3 + 2 = \\boxed{5}", "1 + 2 + 3 = \\boxed{7}"])
    first = prompt_record((1, 2, 3), "6", "3 + 3 + 2 = \\boxed{8}", texts)
    # Truth (2, 2, 1) = 5: greedy right, the vote right (unanimous).
    second = prompt_record((2, 2, 1), "5", "1 + 2 + 2 = \\boxed{5}", ["2 + 1 + 2 = \\boxed{5}"] * 10)
    s = summarise([first, second], positional=False)
    assert s["greedy_accuracy"] == 0.5 and s["majority_accuracy"] == 1.0 and s["vote_margin"] == 0.5
    # d = (1, 0): mean 0.5, sample sd sqrt(0.5), SE sqrt(0.5 / 2) = 0.5.
    assert abs(s["vote_margin_se"] - 0.5) < 1e-12
    assert s["greedy_reading_wrong"] == 0.5 and s["greedy_misread_by_position"] is None
    assert s["sampled_wrong_count"] == 1 / 20 and s["sampled_misread"] == 2 / 20 and s["sampled_bad_sum"] == 1 / 20
    # No positional readings when the order is shuffled.
    assert s["contested_reading_vote"] == {}
    # As multisets: (3, 3, 2) for (1, 2, 3) reads the 2 and a 3 right and the 1 as a 3; (1, 2, 2) for (2, 2, 1) is right.
    assert s["digit_confusion"] == {"1->1": 1, "1->3": 1, "2->2": 3, "3->3": 1}
    positional = summarise([first, second])
    # Read by place, (3, 3, 2) misses all three of (1, 2, 3), and (1, 2, 2) the first and third of (2, 2, 1).
    assert positional["greedy_misread_by_position"] == [1.0, 0.5, 1.0]
    text = markdown({"k": 10, "temperature": 0.7, "task_args": {"count": 3}, "models": {"m": {"train": s, "heldout": s}}})
    assert "+0.500 (0.500)" in text and "The vote on contested readings" not in text


def test_mm_upt_cpu_overrides_keep_the_finished_runs_fingerprints():
    from learning_modalities import GROUPS, mm_upt_cpu

    # The list the committed MM-UPT rows ran with (their reuse fingerprints hash it, order included).
    assert mm_upt_cpu("1e-5") == ["data.prompts_per_step=8", "rollout.max_new_tokens=16", "algorithm.mini_batches=1",
                                  "optim.lr=1e-5", "train.steps=60", "train.save_every=0",
                                  "data.task_args={heldout_size: 128}"]
    three = GROUPS["mm_upt_c3s450_lr1e-5"].overrides
    assert three[:2] == ["model.path=artifacts/tiny-qwen2.5-vl-mmupt-c3s-450", "model.zoo=tiny-qwen2.5-vl-mmupt-c3s-450"]
    assert three[-1] == "data.task_args={heldout_size: 128, count: 3}"  # MM-UPT never reads the demonstrations' order


def test_vote_push_on_readings_by_hand():
    # Truth (2, 3) = 5; 6 samples read "3 + 3" (6, the vote), 4 read "2 + 3" (5, right). Rewards 1 x 6, 0 x 4: mean 0.6,
    # std sqrt(0.24); advantages +0.4/std and -0.6/std. "3->3" is in every reading: 6 * 0.4 - 4 * 0.6 = 0; "2->3" only in
    # the vote's: +2.4/std; "2->2" only in the others: -2.4/std. A unanimous prompt adds nothing.
    records = [prompt_record((2, 3), "5", "3 + 3 = \\boxed{6}", _texts([(3, 3)] * 6 + [(2, 3)] * 4)),
               prompt_record((1, 1), "2", "1 + 1 = \\boxed{2}", _texts([(1, 1)] * 10))]
    push = vote_push_on_readings(records)
    unit = 2.4 / (0.24 ** 0.5 + 1e-6)
    assert set(push) == {"2->2", "2->3", "3->3"}
    assert abs(push["2->3"] - unit) < 1e-9 and abs(push["2->2"] + unit) < 1e-9 and abs(push["3->3"]) < 1e-9


def test_recital_of_the_rows_own_demonstration_by_hand():
    # Truth (1, 2, 3); its demonstration reads "3 + 1 + 2". Greedy recites it; 4 of 10 samples do, 6 read another order.
    recited = prompt_record((1, 2, 3), "6", "3 + 1 + 2 = \\boxed{6}", ["3 + 1 + 2 = \\boxed{6}"] * 4
                            + ["1 + 2 + 3 = \\boxed{6}"] * 6, demonstration=(3, 1, 2))
    # Truth (2, 2, 1), demonstration "2 + 1 + 2": greedy reads "1 + 2 + 2" (right, not recited); no sample recites it.
    other = prompt_record((2, 2, 1), "5", "1 + 2 + 2 = \\boxed{5}", ["2 + 2 + 1 = \\boxed{5}"] * 10, demonstration=(2, 1, 2))
    assert recital([recited, other]) == {"greedy_recites_demonstration": 0.5, "sampled_recite_demonstration": 4 / 20}
    assert recital(_records()) == {"greedy_recites_demonstration": None, "sampled_recite_demonstration": None}
    s = summarise([recited, other], positional=False)
    assert s["greedy_recites_demonstration"] == 0.5
    text = markdown({"k": 10, "temperature": 0.7, "task_args": {}, "models": {"m": {"train": s, "validation": s}}})
    assert "| m | validation | 1.000 |" in text and "| 0.500 / 0.200 |" in text and "| m | heldout |" not in text


def test_screen_rule_by_hand():
    from mm_upt_screen import screen_rows, steps_of, verdict

    base = {"greedy_accuracy": 0.70, "majority_accuracy": 0.75, "vote_margin": 0.05, "vote_margin_se": 0.02,
            "contested_vote_accuracy": 0.6, "prompts": 256}
    assert verdict(base) == []  # 0.05 >= 2 x 0.02
    assert verdict({**base, "vote_margin_se": 0.0251}) == ["margin < 2 SE"]  # 0.05 < 0.0502
    assert verdict({**base, "greedy_accuracy": 0.801}) == ["greedy > 0.8"]
    assert verdict({**base, "contested_vote_accuracy": 0.5}) == ["vote right on ≤ 0.5 of contested"]
    assert verdict({**base, "contested_vote_accuracy": None, "vote_margin": 0.0, "vote_margin_se": 0.0}) == [
        "vote right on ≤ 0.5 of contested", "margin < 2 SE"]
    assert steps_of("sft450") == 450 and steps_of("c3s1000") == 1000
    row, = screen_rows("3 numbers", {"temperature": 0.7, "models": {"sft450": {"validation": base, "train": base}}})
    assert row.startswith("| 3 numbers | 0.7 | 450 | 0.700 | 0.750 | +0.050 (0.020) | +2.50 | 0.60 | **yes** |")


def test_session8_groups_load_and_differ_only_in_the_reward():
    from learning_modalities import GROUPS

    from mmpost.config import load_config

    vote, control = GROUPS["mm_upt_c4s700_t10_lr3e-5_20"], GROUPS["mm_upt_c4s700_t10_lr3e-5_20_random"]
    assert control.overrides[:-1] == vote.overrides
    assert GROUPS["mm_upt_c4s700_t07_lr3e-5_20"].overrides == vote.overrides[:-1]  # the recipe's T 0.7
    assert vote.overrides[-1] == "rollout.temperature=1.0"
    config = load_config(REPO / "recipes" / "mm_upt.yaml", control.overrides)
    assert config.rollout.max_new_tokens == 24 and config.rollout.temperature == 1.0 and config.train.steps == 20
    assert config.data.task_args == {"heldout_size": 512, "count": 4, "train_offset": 500000}
    assert [r["name"] for r in config.rewards] == ["mm_upt_random_control"]
    assert [r["name"] for r in load_config(REPO / "recipes" / "mm_upt.yaml", vote.overrides).rewards] == ["mm_upt_majority_vote"]


def test_grpo_gap_screen_rule_by_hand():
    from grpo_gap_screen import choose, gap_and_se, possible_sums, screen, transient_dip

    assert possible_sums(3, 1, 5) == 13 and possible_sums(4, 1, 3) == 9 and possible_sums(2, 1, 3) == 5
    # Truth 5 on each prompt. Greedy right on 1 of 4; some sample right on 3 of 4: d = 0, 1, 1, 0 -> mean 0.5,
    # sample sd sqrt(1/3), SE sqrt(1/3) / 2.
    right, wrong = "2 + 3 = \\boxed{5}", "3 + 3 = \\boxed{6}"
    records = [prompt_record((2, 3), "5", right, [right, wrong]), prompt_record((2, 3), "5", wrong, [wrong, right]),
               prompt_record((2, 3), "5", wrong, [right, right]), prompt_record((2, 3), "5", wrong, [wrong, wrong])]
    gap, se = gap_and_se(records)
    assert gap == 0.5 and abs(se - (1 / 3) ** 0.5 / 2) < 1e-12
    assert transient_dip(0.35, [0.336, 0.320]) == []
    assert transient_dip(0.727, [0.977, 0.953]) == ["a neighbour ±50 steps differs by > 0.05"]
    assert transient_dip(0.4, [None, 0.41]) == ["a neighbour ±50 steps unmeasured"]
    # 2 samples, 5 possible sums: a uniform guess's pass@2 = 1 - 0.8^2 = 0.36 > pass@2 (0.75) - 0.2? No: 0.36 <= 0.55.
    row = screen(records, k=2, choices=5, neighbours=[0.25, 0.26])
    assert row["greedy"] == 0.25 and row["pass_at_k"] == 0.75 and abs(row["guess_pass_at_k"] - 0.36) < 1e-12
    assert abs(row["gap_above_guessing"] - (0.75 - 0.36)) < 1e-12
    assert row["failed"] == ["gap < 0.1 or < 2 SE"]  # 0.5 < 2 x 0.289
    # Two answer choices: a coin's pass@2 is 0.75, within 0.2 of the model's.
    assert "uniform guess within 0.2 of pass@2" in screen(records, k=2, choices=2, neighbours=[0.25, 0.26])["failed"]
    rows = [{"steps": 850, "gap_above_guessing": 0.300, "failed": []}, {"steps": 350, "gap_above_guessing": 0.295, "failed": []},
            {"steps": 200, "gap_above_guessing": 0.5, "failed": ["greedy > 0.8"]}]
    assert choose(rows)["steps"] == 350  # within 0.01 of the best qualifier: fewer SFT steps
    assert choose([{**rows[0], "gap_above_guessing": 0.32}, rows[1]])["steps"] == 850
    assert choose(rows[2:]) is None


def test_grpo_gap_diagnosis_by_hand():
    from grpo_gap_diagnosis import gap_kind, greedy_errors, guessing_level, sum_distribution, transitions

    # Two digits in 1..3: sums 2..6 with counts 1, 2, 3, 2, 1 of 9.
    dist = sum_distribution(2, 1, 3)
    assert dist == {"2": 1 / 9, "3": 2 / 9, "4": 3 / 9, "5": 2 / 9, "6": 1 / 9}
    assert guessing_level("4", dist) == 3 / 9 and guessing_level("2", dist) == 1 / 5  # uniform beats the prior on "2"
    right, misread, bad_sum = "1 + 3 = \\boxed{4}", "2 + 3 = \\boxed{5}", "1 + 3 = \\boxed{5}"
    # Truth 4 (guessing level 1/3): 3 of 4 samples right is above it, 1 of 4 is not.
    skill = prompt_record((1, 3), "4", misread, [right] * 3 + [misread])
    guess = prompt_record((1, 3), "4", bad_sum, [right] + [misread] * 3)
    unreached = prompt_record((1, 3), "4", misread, [misread] * 4)
    solved = prompt_record((1, 3), "4", right, [misread] * 4)
    assert [gap_kind(r, dist) for r in (skill, guess, unreached, solved)] == ["skill", "guess", "unreached", "solved"]
    # A later model that answers the skill prompt right and loses the solved one.
    later = [prompt_record((1, 3), "4", t, [t]) for t in (right, bad_sum, misread, misread)]
    moved = transitions([skill, guess, unreached, solved], later, dist)
    assert moved == {"solved": {"prompts": 1, "right_after": 0}, "skill": {"prompts": 1, "right_after": 1},
                     "guess": {"prompts": 1, "right_after": 0}, "unreached": {"prompts": 1, "right_after": 0}}
    assert greedy_errors(later) == {"greedy_wrong": 0.75, "misread": 0.5, "read_right_sum_wrong": 0.25}
    from grpo_gap_diagnosis import by_right_samples

    # skill: greedy wrong, 3 of 4 right, later right; guess: wrong, 1 of 4, later wrong; unreached: wrong, 0, later
    # wrong; solved: greedy right, 0 of 4 right (a near tie), later wrong.
    assert by_right_samples([skill, guess, unreached, solved], later) == {
        "greedy_right": {0: [1, 0]}, "greedy_wrong": {0: [1, 0], 1: [1, 0], 3: [1, 1]}}


def test_grpo_settings_table_lists_every_checkpoint():
    from grpo_gap_screen import paid_with_wrong_reading, settings_table

    v = {"greedy_accuracy": 0.453, "sampled_accuracy": 0.31, "pass_at_k": 0.824, "greedy_reading_wrong": 0.5,
         "greedy_sum_inconsistent": 0.25}
    # Right boxes: "9" three times; one read right (another order), one misread (2, 3, 3), one without a reading.
    records = {"lr3e-5_s320": {"validation": [
        {"numbers": [2, 3, 4], "truth": "9", "answers": ["9", "9", "9", "8"], "reads": [[4, 3, 2], [2, 3, 3], None, [2, 3, 4]]}]}}
    assert paid_with_wrong_reading(records["lr3e-5_s320"]["validation"]) == 2 / 3
    assert paid_with_wrong_reading([{"numbers": [1], "truth": "2", "answers": ["3"], "reads": [[3]]}]) is None
    table = settings_table([("24 tokens", {"models": {"ws": {"validation": {**v, "greedy_accuracy": 0.348}},
                                                      "lr3e-5_s320": {"validation": v}}}, records)])
    assert table.splitlines()[2:] == ["| 24 tokens | ws | 0.348 | 0.310 | 0.824 | 0.500 | 0.250 | - |",
                                      "| 24 tokens | lr3e-5_s320 | 0.453 | 0.310 | 0.824 | 0.500 | 0.250 | 0.667 |"]
