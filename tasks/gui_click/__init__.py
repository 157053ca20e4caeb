"""The synthetic GUI click task (registered as task "gui_click"); see README.md."""
from mmpost.tasks.gui_click.render import BUTTON_LABELS, FIELD_LABELS, Element, Screen, random_screen, render_screen
from mmpost.tasks.gui_click.task import GuiClickTask, screen_split

__all__ = ["BUTTON_LABELS", "FIELD_LABELS", "Element", "GuiClickTask", "Screen", "random_screen", "render_screen", "screen_split"]
from . import warmup  # noqa: E402,F401  (registers the warm-started zoo model "tiny-qwen2.5-vl-gui")
