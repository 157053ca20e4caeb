"""The synthetic audio multiple-choice task (task "audio_mcq") and R1-AQA / AudioMCQ rewards; see README.md."""
from mmpost.tasks.audio_mcq.rewards import audiomcq_accuracy, r1aqa_accuracy, r1aqa_format
from mmpost.tasks.audio_mcq.task import AUDIOMCQ_SYSTEM_PROMPT, AudioMCQTask, r1aqa_prompt_text

__all__ = ["AUDIOMCQ_SYSTEM_PROMPT", "AudioMCQTask", "audiomcq_accuracy", "r1aqa_accuracy", "r1aqa_format", "r1aqa_prompt_text"]
