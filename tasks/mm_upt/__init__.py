"""MM-UPT (unsupervised post-training by majority-vote GRPO): task "digit_sum", rewards "mm_upt_majority_vote"
and "mm_upt_label_accuracy" (with "mm_upt_random_control" and "digit_sum_consistent_accuracy" for diagnoses), zoo
"tiny-qwen2.5-vl-mmupt", and the question synthesizer; see README.md."""
from mmpost.tasks.mm_upt.rewards import (NO_ANSWER, answers_equal, digit_sum_consistent_accuracy, majority_answer,
                                         mm_upt_label_accuracy, mm_upt_majority_vote, vote_answer, worked_reading)
from mmpost.tasks.mm_upt.task import MM_UPT_SUFFIX, DigitSumTask, worked_answer

__all__ = ["MM_UPT_SUFFIX", "NO_ANSWER", "DigitSumTask", "answers_equal", "digit_sum_consistent_accuracy", "majority_answer",
           "mm_upt_label_accuracy", "mm_upt_majority_vote", "vote_answer", "worked_answer", "worked_reading"]
from . import warmup  # noqa: E402,F401  (registers the warm-started zoo model)
