"""Learning on the other vision-language tasks, shown not claimed: GUI grounding (GuirlVG), label-free MM-UPT, driving
GRPO and GRPO on video, each from its cached warm start, 3 seeds as parallel processes.

    python benchmarks/learning_modalities.py                         # DEFAULT_GROUPS, seeds 0 1 2
    python benchmarks/learning_modalities.py --groups gui_click gui_click_lr5e-4 driving driving_t07
    python benchmarks/learning_modalities.py --groups mm_upt --seeds 0 1 2 3

Same protocol and report as benchmarks/learning.py (benchmarks/learning_report.py): held-out metric before/after under
greedy decoding (the task's accuracy reward on its held-out split), SE of the mean gain, sampled accuracy and pass@k,
per-step diagnostics. Recipes whose YAML holds the paper's real-scale values (MM-UPT) run with the CPU overrides
listed here; the others run as shipped. Writes benchmarks/results/learning_modalities.{md,json} and a figure per group
(learning_<group>.png; <report>_<group>.png under another --report, so a partial run never replaces them).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO, Job, Row, gain_statistics, gap_closed, mean_std, run_jobs, write_report  # noqa: E402


@dataclass
class Group:
    label: str
    recipe: str
    task: str
    metric: str
    overrides: list[str] = field(default_factory=list)
    note: str = ""


def mm_upt_cpu(lr: str, warm_start: str | None = None, prompts: int = 8, task_args: str = "", *, steps: int = 60,
               heldout: int = 128, max_new_tokens: int = 16, temperature: float | None = None) -> list[str]:
    """MM-UPT's overrides on CPU (the recipe holds the 7B run's values): fewer prompts, short answers, the tiny model's
    learning rate, 60 steps, 128 held-out questions; optionally another warm-start length from the zoo, and further
    digit_sum options (`task_args`, e.g. "count: 3", the warm start's task). 4 numbers need `max_new_tokens=24` (16 cut a
    two-digit sum's box). The order is kept, and the defaults add nothing: it is part of each finished run's reuse
    fingerprint."""
    model = [f"model.path=artifacts/{warm_start}", f"model.zoo={warm_start}"] if warm_start else []
    extra = f", {task_args}" if task_args else ""
    sampling = [] if temperature is None else [f"rollout.temperature={temperature}"]
    return model + [f"data.prompts_per_step={prompts}", f"rollout.max_new_tokens={max_new_tokens}", "algorithm.mini_batches=1",
                    f"optim.lr={lr}", f"train.steps={steps}", "train.save_every=0",
                    f"data.task_args={{heldout_size: {heldout}{extra}}}"] + sampling


CONTROL_SUFFIX = "_random"  # a group's coin-flip control: the same overrides with mm_upt_random_control as the reward


def grpo_digit_sum(lr: str, steps: int, warm_start: str, task_args: str, *, max_new_tokens: int = 16, heldout: int = 512,
                   reward: str = "mm_upt_label_accuracy", prompts: int = 8) -> list[str]:
    """recipes/grpo.yaml as shipped (loss, G = 8, 8 prompts a step, T 1.0) on digit_sum with the true answer as the
    reward (`train_labels` puts it on the train rows), from an MM-UPT warm start, on training prompts it never saw
    (train_offset 500000), scored on `heldout` questions. `task_args`: the warm start's digit_sum options; 3 numbers fit
    16 new tokens, 4 need 24 (diag/clipped_ratio says whether any answer is cut). `reward`: mm_upt_random_control for the
    coin-flip control, digit_sum_consistent_accuracy for the box paid only when it follows from the reading.
    `prompts`: prompts per step (8 as shipped)."""
    return [f"model.path=artifacts/{warm_start}", f"model.zoo={warm_start}", "data.task=digit_sum",
            f"data.task_args={{heldout_size: {heldout}, {task_args}, train_labels: true, train_offset: 500000}}",
            f"rewards=[{{name: {reward}, weight: 1.0}}]", f"rollout.max_new_tokens={max_new_tokens}", f"optim.lr={lr}",
            f"train.steps={steps}", "train.save_every=0"] + ([f"data.prompts_per_step={prompts}"] if prompts != 8 else [])


# GRPO on digit_sum with the box paid only when it is the sum of the numbers the answer read (session 11): label, reward.
CONSISTENT = ("true answer, paid only when the box follows from the reading", "digit_sum_consistent_accuracy")

# The GUI warm starts: the 600-step one on 512 screens (the recipe's until the sixth session) and the 2400-step one on
# 8192 screens (the recipe's since). Groups measured from the earlier one name it, so a rerun keeps its warm start.
WS600 = ["model.path=artifacts/tiny-qwen2.5-vl-gui", "model.zoo=tiny-qwen2.5-vl-gui"]
WS8192 = ["model.path=artifacts/tiny-qwen2.5-vl-gui-8192", "model.zoo=tiny-qwen2.5-vl-gui-8192"]

GROUPS = {
    # GuirlVG rows: gui_click, gui_click_lr5e-4 and gui_click_lr5e-4_100 in learning_modalities_earlier.md were measured from
    # the 400-step warm start (held-out greedy 0.328); the GUI warm start is now 600 SFT steps (tasks/gui_click/warmup.py,
    # results/warmstart_gui.md) and learning_gui.md holds the rows measured from it. Since the sixth session the recipe
    # starts from the 8192-screen warm start (recipes/guirlvg.yaml says why): gui_click is the gui_click_ws8192 run, and
    # gui_click_ws600 is the recipe as shipped before (the GuirlVG row of learning_gui.md and learning_gui_s6.md).
    "gui_click": Group("GuirlVG", "guirlvg", "gui_click", "held-out click accuracy (point in box)"),
    "gui_click_ws600": Group("GuirlVG, 600-step warm start on 512 screens (the earlier default)", "guirlvg", "gui_click",
                             "held-out click accuracy (point in box)", overrides=WS600),
    # The recipe's earlier lr 2e-3 (the default until the 600-step warm start; see the comment on gui_click_lr5e-4).
    "gui_click_lr2e-3": Group("GuirlVG, lr 2e-3 (the earlier default)", "guirlvg", "gui_click",
                              "held-out click accuracy (point in box)", overrides=WS600 + ["optim.lr=2e-3"]),
    # From the 400-step warm start, lr 2e-3 moved the policy far in one update (KL to the warm start 0.17-0.28 after
    # step 1, entropy 0.55 → 0.33 over 40 steps) while the in-box reward fell; this row: a 4× smaller step.
    # From the 600-step warm start (learning_gui.md) lr 2e-3 again leaves the start in one update (KL to start 0.08-0.16
    # after step 1, 0.33 mean over the first 10 steps, 0.63-0.86 over the last 10) while the rollouts' in-box reward
    # falls 0.28 -> 0.19 and no group is flat (0.004): the signal is there, the step is too large. KL grows about as
    # lr², so a 4× smaller step should move the policy ~16× less per update: this row, at the recipe's 40 steps (since
    # then the recipe's default, so gui_click is the same run).
    "gui_click_lr5e-4": Group("GuirlVG, lr 5e-4", "guirlvg", "gui_click", "held-out click accuracy (point in box)",
                              overrides=WS600 + ["optim.lr=5e-4"]),
    # (400-step warm start) At lr 5e-4 the policy kept its entropy (0.59 → 0.52) and the held-out vote rose (maj@8
    # 0.18 → 0.31) in 40 steps while greedy accuracy moved by seed (+0.016 / -0.047 / -0.125): the same step, 100 steps.
    "gui_click_lr5e-4_100": Group("GuirlVG, lr 5e-4, 100 steps", "guirlvg", "gui_click",
                                  "held-out click accuracy (point in box)", overrides=WS600 + ["optim.lr=5e-4", "train.steps=100"]),
    # Sixth session (results/learning_gui_s6.md): the two levers not tried before, from the 600-step warm start.
    # (a) a smaller step for longer, as driving learned at lr 1e-4 for 100 steps after lr 3e-4 for 40 lost.
    "gui_click_lr2e-4_150": Group("GuirlVG, lr 2e-4, 150 steps", "guirlvg", "gui_click",
                                  "held-out click accuracy (point in box)", overrides=WS600 + ["optim.lr=2e-4", "train.steps=150"]),
    # lr 2e-4 for 150 steps: the rollouts' in-box reward rises 0.48 -> 0.60 (seed 0, first -> last 25 steps) with KL to
    # start 0.08 and entropy 0.40 -> 0.32, still rising at step 150: the same step for twice as long.
    "gui_click_lr2e-4_300": Group("GuirlVG, lr 2e-4, 300 steps", "guirlvg", "gui_click",
                                  "held-out click accuracy (point in box)", overrides=WS600 + ["optim.lr=2e-4", "train.steps=300"]),
    # (b) the memorisation: the warm start saw its 512 training screens 19 times (in box 0.43 on them at T 1 vs 0.287
    # held out); 4096 training screens (the first 512 are the same screens, the held-out split is a fixed hash partition
    # of screen space, so it stays disjoint) make 7 in 8 of the rollouts' screens new to it, each seen about once.
    "gui_click_train4096": Group("GuirlVG, 4096 training screens", "guirlvg", "gui_click",
                                 "held-out click accuracy (point in box)", overrides=WS600 + ["data.task_args={train_size: 4096}"]),
    "gui_click_train4096_lr2e-4_150": Group("GuirlVG, 4096 training screens, lr 2e-4, 150 steps", "guirlvg", "gui_click",
                                            "held-out click accuracy (point in box)",
                                            overrides=WS600 + ["data.task_args={train_size: 4096}", "optim.lr=2e-4", "train.steps=150"]),
    # From the warm start SFT-trained on 8192 screens for 2400 steps (tiny-qwen2.5-vl-gui-8192, tasks/gui_click/warmup.py,
    # results/warmstart_gui_s6.md): the 512-screen warm start is at the random-element level on unseen screens (greedy
    # 0.309 on 256 held-out screens vs 0.359 for a click in a random element; 0.656 on its own SFT screens), so GRPO
    # from it raised only the memorised screens (learning_gui_s6_diagnosis.md). The recipe as shipped, and lr 2e-4.
    "gui_click_ws8192": Group("GuirlVG, 8192-screen warm start", "guirlvg", "gui_click",
                              "held-out click accuracy (point in box)", overrides=WS8192),
    "gui_click_ws8192_lr2e-4_150": Group("GuirlVG, 8192-screen warm start, lr 2e-4, 150 steps", "guirlvg", "gui_click",
                                         "held-out click accuracy (point in box)",
                                         overrides=WS8192 + ["optim.lr=2e-4", "train.steps=150"]),
    "mm_upt": Group("MM-UPT", "mm_upt", "digit_sum", "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-3")),
    # The same at a 10× lower learning rate: at 1e-3 the policy leaves the warm start within 10 steps (KL to start
    # 0.66-1.0 over the first 10 steps) and collapses onto one answer; this row shows whether a gentler step keeps it.
    "mm_upt_lr1e-4": Group("MM-UPT, lr 1e-4", "mm_upt", "digit_sum", "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-4")),
    # 10× gentler again: on the 225-step warm start lr 1e-4 still collapses (rollout truth accuracy 0.61 → 0.14,
    # KL to start 0.01 → 0.50 over 60 steps); this row shows what a step small enough not to leave the warm start does.
    "mm_upt_lr1e-5": Group("MM-UPT, lr 1e-5", "mm_upt", "digit_sum", "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-5")),
    # From the 245-step warm start (tiny-qwen2.5-vl-mmupt-245; tasks/mm_upt/warmup.py says why), at the step of the
    # row above: where the 225-step warm start's contested vote reads the first "2" as "3" (18 of 30 prompts) and lr 1e-5
    # spreads that error to every "2", the 245-step one's contested votes read every digit right (68 of 88 readings).
    "mm_upt_ws245_lr1e-5": Group("MM-UPT, 245-step warm start, lr 1e-5", "mm_upt", "digit_sum",
                                 "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-5", "tiny-qwen2.5-vl-mmupt-245")),
    # The same warm start and step with 4x the prompts per update (32 x 10 samples). At 8 prompts the seeds split
    # (-0.094 / +0.016 / -0.008): the update on the shared "2 or 3" reading is the net of the contested groups whose
    # vote reads "3" and those whose vote reads "2", and from the 245-step start these nearly cancel on the training
    # prompts (38 vs 43 contested readings; 66 vs 48 at 225, where every seed drifted to "3"), so with 8 prompts a
    # step the sign of that net is noise, and seed 0 tipped to "3" (2 read as 3: 22 -> 37 of 79). Averaging over
    # 4x the groups shrinks that noise; the expected net (43 vs 38) leans towards the right reading.
    "mm_upt_ws245_lr1e-5_p32": Group("MM-UPT, 245-step warm start, lr 1e-5, 32 prompts per step", "mm_upt", "digit_sum",
                                     "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-5", "tiny-qwen2.5-vl-mmupt-245", prompts=32)),
    # Over the 0.8 ceiling (held-out greedy 0.820), so not a target row: a test of what decides the drift. At 225 and
    # 245 the warm start's own greedy misreads lean to "3" (2 read as 3: 32 and 22 of 79 training readings; 3 read as
    # 2: 3 and 2 of 85) and MM-UPT moved the ambiguous "2"s to "3" whichever way the contested votes leaned (at 245 they
    # read "2" on 43 contested readings and "3" on 39, 0.77 of them right). At 250 the misreads lean the other way (2
    # read as 3: 4; 3 read as 2: 15): if the warm start's own lean decides, the drift here goes to "2".
    "mm_upt_ws250_lr1e-5": Group("MM-UPT, 250-step warm start (over the 0.8 ceiling), lr 1e-5", "mm_upt", "digit_sum",
                                 "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-5", "tiny-qwen2.5-vl-mmupt-250")),
    # The one checkpoint of the SFT curve (every 25 steps, 100 to 350) whose majority vote beats its greedy answer on
    # the training prompts: maj@10 0.367 vs greedy 0.234 (+0.133; every other checkpoint -0.055 to +0.023, at T 0.7 and
    # T 1.0 alike). Its vote is right on only 0.37 of those prompts, so it is not the regime (a vote right more
    # often than not); it shows whether the paper's mechanism, greedy moving towards maj@k, works where there is a margin.
    "mm_upt_ws125_lr1e-5": Group("MM-UPT, 125-step warm start (vote right on 0.37), lr 1e-5", "mm_upt", "digit_sum",
                                 "held-out accuracy vs hidden labels", overrides=mm_upt_cpu("1e-5", "tiny-qwen2.5-vl-mmupt-125")),
    # Three numbers read in a shuffled order (digit_sum count 3, reading_order shuffled), from the 450-step warm start
    # whose vote beats greedy on the training prompts (+0.062 ± 0.020, vote right on 0.77; tasks/mm_upt/warmup.py,
    # results/learning_mm_upt_s6_diagnosis.md). The learning rate is chosen on the training side (the rollouts' vote
    # reward against their hidden-label accuracy, and KL to the warm start).
    **{f"mm_upt_c3s450_lr{lr}": Group(f"MM-UPT, 3 numbers read in shuffled order, 450-step warm start, lr {lr}", "mm_upt",
                                      "digit_sum", "held-out accuracy vs hidden labels",
                                      overrides=mm_upt_cpu(lr, "tiny-qwen2.5-vl-mmupt-c3s-450", task_args="count: 3"))
       for lr in ("1e-5", "3e-5", "1e-4")},
    # At 8 prompts a step, lr 1e-5 barely leaves the warm start (KL to start 0.002-0.003 after 60 steps) and the
    # rollouts' truth accuracy moves by seed (-0.06 / +0.08 / -0.03, first 10 -> last 10 steps), while lr 3e-5 and 1e-4
    # raise the vote reward as truth accuracy falls (0.65 -> 0.24 and 0.37 -> 0.18 on seed 0): the same step over 4x
    # the prompts, so each update averages the vote over more images.
    "mm_upt_c3s450_lr1e-5_p32": Group("MM-UPT, 3 numbers read in shuffled order, 450-step warm start, lr 1e-5, 32 prompts "
                                      "per step", "mm_upt", "digit_sum", "held-out accuracy vs hidden labels",
                                      overrides=mm_upt_cpu("1e-5", "tiny-qwen2.5-vl-mmupt-c3s-450", prompts=32,
                                                           task_args="count: 3")),
    # Session 8 (results/learning_mm_upt_s8_diagnosis.md): four numbers read in a shuffled order, 700 SFT steps, the one
    # checkpoint x temperature of the screen whose vote beats greedy on prompts the warm start never saw (+0.043 ± 0.018 on
    # 256 validation prompts at T 1.0, confirmed +0.049 ± 0.016 on 512 more). MM-UPT at T 1.0, 24 new tokens (4 numbers and
    # a two-digit sum need 17), on unseen training rows (train_offset 500000: neither the SFT's rows nor the validation
    # set), lr 3e-5 for 20 steps (chosen on seed 0 by validation greedy accuracy, the rollouts' truth accuracy rising),
    # scored on 512 held-out questions (the first 128 are the earlier sessions' split).
    **{f"mm_upt_c4s700_t10_lr3e-5_20{suffix}": Group(
        f"MM-UPT, 4 numbers read in shuffled order, 700-step warm start, T 1.0, lr 3e-5, 20 steps, unseen prompts{label}",
        "mm_upt", "digit_sum", "held-out accuracy vs hidden labels",
        overrides=mm_upt_cpu("3e-5", "tiny-qwen2.5-vl-mmupt-c4s-700", task_args="count: 4, train_offset: 500000", steps=20,
                             heldout=512, max_new_tokens=24, temperature=1.0) + rewards)
       # The control: the same GRPO with a coin-flip reward (no information); the warm start is a dip of its SFT curve
       # (validation greedy 0.977 at 650 steps, 0.727 at 700, 0.953 at 750), so a small update of any kind may recover.
       for suffix, label, rewards in (("", "", []), ("_random", " (control: random reward)",
                                                     ["rewards=[{name: mm_upt_random_control, weight: 1.0}]"]))},
    # The same at the official T 0.7, where this warm start's validation margin (+0.020 ± 0.017) does not qualify: an extra
    # setting run after the T 1.0 rows, to show what the temperature does (not chosen by the session's rule).
    "mm_upt_c4s700_t07_lr3e-5_20": Group(
        "MM-UPT, 4 numbers read in shuffled order, 700-step warm start, T 0.7, lr 3e-5, 20 steps, unseen prompts", "mm_upt",
        "digit_sum", "held-out accuracy vs hidden labels",
        overrides=mm_upt_cpu("3e-5", "tiny-qwen2.5-vl-mmupt-c4s-700", task_args="count: 4, train_offset: 500000", steps=20,
                             heldout=512, max_new_tokens=24)),
    # Session 9 (results/learning_grpo_s9.md): GRPO with the true answer as the reward, where the warm start's pass@8 −
    # greedy gap is skill rather than guessing. Warm start by a rule on validation prompts (learning_grpo_s9_screen.md):
    # 3 numbers with digits 1-5 read in a shuffled order, 350 SFT steps (greedy 0.348, pass@8 0.777, a uniform guess among
    # the 13 sums 0.473; its SFT curve flat within 0.03 at 300 and 400 steps). lr 3e-5 and 320 steps chosen on seed 0's
    # validation greedy from lr {3e-5, 1e-4, 2e-4} × steps {20, 40, 80, 160, 320} (the recipe's 5e-4 collapsed: pass@8
    # 0.78 → 0.41). 24 new tokens: at 16, 0.5-5% of a step's samples were cut. Each with its coin-flip control.
    **{f"grpo_{name}_lr3e-5_320{suffix}": Group(
        f"GRPO (true-answer reward), {label}, lr 3e-5, 320 steps, unseen prompts{note}", "grpo", "digit_sum",
        "held-out accuracy vs labels", overrides=grpo_digit_sum("3e-5", 320, warm_start, task_args, max_new_tokens=24,
                                                                 reward=reward))
       for name, label, warm_start, task_args in (
           ("c3sh5_350", "3 numbers 1-5 shuffled, 350-step warm start", "tiny-qwen2.5-vl-mmupt-c3sh5-350", "count: 3, high: 5"),
           # The secondary: session 8's 4-number warm start, a transient dip of its SFT curve (0.977 / 0.727 / 0.953 at
           # 650 / 700 / 750 steps), at the primary's settings (no grid of its own).
           ("c4s700", "4 numbers 1-3 shuffled, 700-step warm start (a dip of its SFT curve)", "tiny-qwen2.5-vl-mmupt-c4s-700",
            "count: 4"))
       for suffix, note, reward in (("", "", "mm_upt_label_accuracy"),
                                    (CONTROL_SUFFIX, " (control: coin-flip reward)", "mm_upt_random_control"))},
    # Session 11 (recipes/grpo.md, "Session 11"; results/learning_grpo_s11_screen.md): the box-only reward pays right
    # boxes reached through misread numbers (24% of the paid samples at this warm start, 36-40% after GRPO), and GRPO
    # then decouples the box from the worked answer (greedy box ≠ its own reading's sum 0.25 → 0.47-0.61). The same run
    # with the box paid only when it follows from the reading; chosen on seed 0's validation greedy over this setting and
    # 32 prompts at lr 1e-4 (0.520 vs 0.516). The box-only row at the same setting is rerun beside it (paired by seed).
    # Then 1280 steps (registered before running: seed 0's validation curve with this reward reached 0.562 at 1280 steps,
    # the validation half-gap being 0.561; 0.51-0.53 from 480 to 1120), both rewards.
    **{f"grpo_c3sh5_350_lr3e-5_{steps}{suffix}": Group(
        f"GRPO ({label}), 3 numbers 1-5 shuffled, 350-step warm start, lr 3e-5, {steps} steps, unseen prompts", "grpo",
        "digit_sum", "held-out accuracy vs labels",
        overrides=grpo_digit_sum("3e-5", steps, "tiny-qwen2.5-vl-mmupt-c3sh5-350", "count: 3, high: 5", max_new_tokens=24,
                                 reward=reward))
       for steps, suffix, label, reward in (
           (320, "_consistent", *CONSISTENT), (1280, "_consistent", *CONSISTENT),
           (1280, "", "true-answer reward", "mm_upt_label_accuracy"),
           # One fixed extension registered after the 1280-step rows (shares 0.48 and 0.42), no choice on validation;
           # the box-only control at the same length registered after two of its seeds had finished.
           (2560, "_consistent", *CONSISTENT), (2560, "", "true-answer reward", "mm_upt_label_accuracy"))},
    "driving": Group("driving GRPO", "driving_grpo", "driving_waypoints", "held-out trajectory accuracy"),
    # The shipped lr 1e-4 for 40 steps (the recipe's earlier length): the policy stays near the warm start (KL 0.005 ->
    # 0.022) and the held-out sampled reward rises on every seed while greedy moves by seed.
    "driving_40": Group("driving GRPO, 40 steps", "driving_grpo", "driving_waypoints", "held-out trajectory accuracy",
                        overrides=["train.steps=40"]),
    # The recipe's earlier lr 2e-3: from the 1000-step warm start it takes the policy off it in one update (KL to start
    # 0.36-0.42 after step 1) and the rollouts' trajectory reward falls 0.52 -> 0.006 within 4 steps.
    "driving_lr2e-3": Group("driving GRPO, lr 2e-3, 40 steps (the earlier defaults)", "driving_grpo", "driving_waypoints",
                            "held-out trajectory accuracy", overrides=["optim.lr=2e-3", "train.steps=40"]),
    # Between the two: how large a step the warm start takes before the held-out reward falls.
    "driving_lr3e-4": Group("driving GRPO, lr 3e-4, 40 steps", "driving_grpo", "driving_waypoints",
                            "held-out trajectory accuracy", overrides=["optim.lr=3e-4", "train.steps=40"]),
    # From the earlier 200-step warm start (greedy 0.128, sampled 0.013 at T 1), rollouts at T 1 almost never scored on
    # the trajectory, so this row sampled closer to greedy (T 0.7) with a smaller step. Not rerun on the 1000-step one.
    "driving_t07": Group("driving GRPO, T 0.7, lr 5e-4", "driving_grpo", "driving_waypoints",
                         "held-out trajectory accuracy",
                         overrides=["rollout.temperature=0.7", "optim.lr=5e-4", "train.steps=40"]),
    # As shipped: lr 5e-4 for 200 steps (recipes/video_grpo.yaml says why); the two rows below are the earlier default
    # (lr 1e-3, 100 steps) and the same step for 200 steps, whose collapse led to the smaller step.
    "video": Group("GRPO on video", "video_grpo", "video_motion", "held-out direction accuracy"),
    # From the 1,250-step warm start (greedy 0.617) 100 steps gain +0.055 (1.8 SE) while the share of flat groups
    # (all 8 samples scored alike) rises 0.30 -> 0.71.
    "video_lr1e-3_100": Group("GRPO on video, lr 1e-3, 100 steps (the earlier default)", "video_grpo", "video_motion",
                              "held-out direction accuracy", overrides=["optim.lr=1e-3", "train.steps=100"]),
    # In 200 steps at lr 1e-3 the gain of the first 100 is lost (-0.068): entropy 0.153 -> 0.036, flat groups 0.83,
    # pass@8 0.945 -> 0.609: the policy collapses onto one answer per clip.
    "video_lr1e-3_200": Group("GRPO on video, lr 1e-3, 200 steps", "video_grpo", "video_motion",
                              "held-out direction accuracy", overrides=["optim.lr=1e-3", "train.steps=200"]),
}


def vote_text(rows: list[Row]) -> str:
    """The held-out majority vote (maj@k at the training temperature) before → after, and on the prompts whose k
    answers disagree, the only ones where a vote reward (MM-UPT) has a gradient: is the vote right there?"""
    keys = [("majority_accuracy", "maj@k"), ("contested_fraction", "contested prompts"),
            ("contested_majority_accuracy", "maj@k on contested prompts")]
    lines = ["| method | " + " | ".join(f"{label} before → after" for _, label in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row in rows:
        cells = []
        for key, _ in keys:
            pairs = [(r.summary.get(f"heldout_{key}_before"), r.summary.get(f"heldout_{key}_after")) for r in row.runs]
            if any(b is None or a is None for b, a in pairs):
                cells.append("-")
                continue
            cells.append(f"{sum(b for b, _ in pairs) / len(pairs):.3f} → {sum(a for _, a in pairs) / len(pairs):.3f}")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "Held-out majority vote (mean over seeds):\n\n" + "\n".join(lines)


MIN_GAP_CLOSED = 0.5  # issue #12: pass@1 closes at least half of the warm start's pass@k − pass@1 gap


def gap_text(rows: list[Row]) -> str:
    """Per group, the share of the warm start's pass@k − greedy gap its greedy gain closes, per seed and mean ± SE, and
    the session-9 test fixed before the runs (mean gain ≥ 2 SE and mean share ≥ 0.5); then each group against its
    coin-flip control, paired by seed."""
    lines = ["| method | pass@k − greedy before | gap closed per seed | mean ± std | SE | gain ≥ 2 SE and closed ≥ "
             f"{MIN_GAP_CLOSED:g} |", "|---|---|---|---|---|---|"]
    for row in rows:
        s = row.statistics()
        if "pass_at_k_before" not in s:
            continue
        closed = gap_closed(s["before"], s["after"], s["pass_at_k_before"])
        mean, std = mean_std(closed)
        se = std / len(closed) ** 0.5
        gaps = [p - b for b, p in zip(s["before"], s["pass_at_k_before"])]
        passed = s["significant"] and mean >= MIN_GAP_CLOSED
        lines.append(f"| {row.label} | {mean_std(gaps)[0]:.3f} | {' / '.join(f'{c:+.2f}' for c in closed)} | {mean:+.2f} ± "
                     f"{std:.2f} | {se:.2f} | {'**yes**' if passed else 'no'} |")
    by_slug = {row.slug: row for row in rows}
    pairs = [(row, by_slug[row.slug + CONTROL_SUFFIX]) for row in rows if row.slug + CONTROL_SUFFIX in by_slug]
    if pairs:
        lines += ["", "Against the coin-flip control (held-out greedy after, paired by seed):", "",
                  "| method | minus control per seed | mean ± std | SE | ≥ 2 SE |", "|---|---|---|---|---|"]
        for row, control in pairs:
            d = gain_statistics([r.after for r in control.runs], [r.after for r in row.runs])
            lines.append(f"| {row.label} | {' / '.join(f'{g:+.3f}' for g in d['gains'])} | {d['gain_mean']:+.3f} ± "
                         f"{d['gain_std']:.3f} | {d['gain_se']:.3f} | {'yes' if d['significant'] else 'no'} "
                         f"({d['gain_over_se']:.1f} SE) |")
    return "Share of the warm start's held-out pass@k − greedy gap closed by the greedy gain:\n\n" + "\n".join(lines)


DEFAULT_GROUPS = ["gui_click", "driving", "video", "mm_upt_lr1e-4", "mm_upt_lr1e-5"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", default=DEFAULT_GROUPS, choices=list(GROUPS),
                        help="default: the shipped recipes as shipped and MM-UPT at the two CPU learning rates; the "
                             "diagnosed variants (gui_click_lr5e-4, driving_t07, mm_upt at lr 1e-3) by name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", default="runs/benchmark-learning")
    parser.add_argument("--report", default="learning_modalities",
                        help="results name: benchmarks/results/<report>.{md,json}; a run of some groups only can write "
                             "its own report instead of replacing the whole table (finished runs are read back)")
    args = parser.parse_args(argv)

    from mmpost.config import load_config
    from mmpost.model import ensure_model_folder

    out = REPO / args.out
    jobs, configs = [], {}
    for name in args.groups:
        group = GROUPS[name]
        configs[name] = load_config(REPO / "recipes" / f"{group.recipe}.yaml", group.overrides)
        ensure_model_folder(configs[name].model)  # the warm start, built once and cached
        jobs += [Job(key=(name, s), recipe=group.recipe, seed=s, overrides=list(group.overrides),
                     output_dir=out / name / f"seed{s}", reuse_before=True) for s in args.seeds]
    runs = run_jobs(jobs, parallel=args.parallel)
    rows = [Row(GROUPS[n].label, n, [runs[(n, s)] for s in args.seeds], metric=GROUPS[n].metric, task=GROUPS[n].task,
                warm_start=configs[n].model.zoo or "", steps=configs[n].train.steps, note=GROUPS[n].note)
            for n in args.groups]
    text = write_report(rows, args.report, title=f"**other vision-language tasks** (seeds {args.seeds})",
                        text=vote_text(rows) + "\n\n" + gap_text(rows), default_name=parser.get_default("report"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
