"""The GuirlVG recipe's tiny CPU preset runs end to end with the adversarial KL controller, and resumes its state."""
import json

import mmpost.algos.kl_adversarial  # noqa: F401  (registers "adversarial" until the registry lists the module)
from conftest import REPO, tiny_overrides
from mmpost.builder import validate
from mmpost.config import load_config
from mmpost.trainer import train

RECIPE = REPO / "recipes" / "guirlvg.yaml"
# The tiny CPU preset (recipes/guirlvg.md): conftest's tiny overrides plus these.
PRESET = {"train.steps": 2, "data.task_args.train_size": 16, "data.task_args.heldout_size": 4}


def test_recipe_first_line_is_its_command_and_it_validates():
    assert RECIPE.read_text().splitlines()[0] == "# mmpost train recipes/guirlvg.yaml"
    checked = validate(load_config(RECIPE))
    assert "kl_controller: adversarial" in checked and "modality: gui" in checked
    assert {"reward: gui_point_in_box (weight 1.0)", "reward: gui_click_format (weight 0.2)"} <= set(checked)


def test_tiny_preset_trains_with_the_adversarial_kl(tiny_vl_dir, tmp_path):
    summary = train(load_config(RECIPE, tiny_overrides(tiny_vl_dir, tmp_path / "run", **PRESET)))
    assert summary["steps"] == 2 and summary["seconds_per_step"] > 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss/kl_coef"] for r in records][0] == 0.04  # β_0 on the first update
    for record in records:
        assert {"reward/gui_point_in_box", "reward/gui_point_distance", "reward/gui_click_format", "loss/kl_adv_rise"} <= set(record)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_2" / "trainer_state.json").read_text())
    assert set(state["kl_controller"]) == {"coef", "baseline", "rise"}
    assert state["kl_controller"]["baseline"] == records[-1]["loss/kl_adv_baseline"]
    config_text = (tmp_path / "run" / "config.yaml").read_text()
    assert "resolution_prompt: true" in config_text
