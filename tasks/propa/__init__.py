"""PROPA's synthetic multi-step digits task (task "propa_digits", reward "propa_answer", zoo
"tiny-qwen2.5-vl-propa"); importing it also registers the step-search sources of `mmpost.search`."""
import mmpost.search  # noqa: F401  (registers "propa", "step_sft", "step_outcome_grpo", "propa_step_label")
from mmpost.tasks.propa.render import render_digits
from mmpost.tasks.propa.task import PropaDigitsTask, propa_answer, solution_steps

__all__ = ["PropaDigitsTask", "propa_answer", "render_digits", "solution_steps"]
from . import warmup  # noqa: E402,F401  (registers the warm-started zoo model)
