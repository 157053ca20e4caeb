"""The synthetic GUI click task (registered as task "gui_click"); see README.md."""
from mmpost.tasks.gui_click.render import BUTTON_LABELS, FIELD_LABELS, Element, Screen, random_screen, render_screen
from mmpost.tasks.gui_click.task import GuiClickTask, screen_split

__all__ = ["BUTTON_LABELS", "FIELD_LABELS", "Element", "GuiClickTask", "Screen", "random_screen", "render_screen", "screen_split"]
