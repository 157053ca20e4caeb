"""GUI modality: coordinate conversions by hand, box bookkeeping, out-of-bounds policy, resolution prompting, rewards."""
import math

import pytest
from PIL import Image

from mmpost.modalities.gui import (
    GuiModality,
    box_outside_image,
    clip_box,
    convert_box,
    convert_point,
    distance_to_box,
    format_point,
    point_in_box,
    write_tiny_screenshot_rows,
    xywh_to_xyxy,
)
from mmpost.modalities.gui.rewards import gui_click_format, gui_point_distance, gui_point_in_box, soft_click_value
from mmpost.registry import MODALITIES, REWARDS
from mmpost.types import DataError

SIZES = dict(original_size=(1120, 560), model_size=(112, 56))


def test_point_conversions_worked_by_hand():
    assert convert_point((56, 28), "model_pixels", "normalized", **SIZES) == pytest.approx((0.5, 0.5))
    assert convert_point((56, 28), "model_pixels", "thousandths", **SIZES) == pytest.approx((500, 500))
    assert convert_point((56, 28), "model_pixels", "pixels", **SIZES) == pytest.approx((560, 280))
    assert convert_point((250, 750), "thousandths", "model_pixels", **SIZES) == pytest.approx((28, 42))
    for system in ("pixels", "model_pixels", "normalized", "thousandths"):
        there = convert_point((300, 100), "pixels", system, **SIZES)
        assert convert_point(there, system, "pixels", **SIZES) == pytest.approx((300, 100))
    with pytest.raises(ValueError, match="unknown coordinate system"):
        convert_point((1, 1), "percent", "pixels", **SIZES)


def test_box_helpers_by_hand():
    assert xywh_to_xyxy((10, 20, 30, 40)) == (10, 20, 40, 60)
    assert convert_box((112, 56, 224, 112), "pixels", "normalized", original_size=(224, 112), model_size=(140, 56)) == pytest.approx((0.5, 0.5, 1, 1))
    assert point_in_box((10, 20), (10, 20, 40, 60)) and point_in_box((40, 60), (10, 20, 40, 60))  # edges count
    assert not point_in_box((40.01, 30), (10, 20, 40, 60))
    assert distance_to_box((0, 0), (3, 4, 5, 6)) == pytest.approx(5.0)
    assert distance_to_box((4, 5), (3, 4, 5, 6)) == 0.0
    assert format_point((12.4, 7.6), "model_pixels") == "(12, 8)" and format_point((0.12345, 0.5), "normalized") == "(0.123, 0.500)"
    assert box_outside_image((0, 0, 10, 10), (10, 10)) == []
    assert len(box_outside_image((-1, 0, 12, 10), (10, 10))) == 2
    assert clip_box((-5, 2, 12, 8), (10, 10)) == (0, 2, 10, 8)


def screenshot_sample(box, **extra):
    return {"id": "shot-1", "images": [Image.new("RGB", (224, 112), "white")], "box": box, **extra}


def test_decode_records_box_in_every_needed_convention():
    modality = GuiModality(min_pixels=56 * 56, max_pixels=112 * 112)
    decoded = modality.decode(screenshot_sample([112, 56, 168, 112]))["decoded"]["gui"]
    # 224x112 over a 12544-pixel budget: smart_resize gives 140x56 (scale 0.625 in x, 0.5 in y).
    assert decoded["image_size"] == [224, 112] and decoded["model_size"] == [140, 56]
    assert decoded["box_pixels"] == [112, 56, 168, 112]
    assert decoded["box"] == pytest.approx([70, 28, 105, 56])
    thousandths = GuiModality(coordinates="thousandths", min_pixels=56 * 56, max_pixels=112 * 112)
    assert thousandths.decode(screenshot_sample([112, 56, 168, 112]))["decoded"]["gui"]["box"] == pytest.approx([500, 500, 750, 1000])


def test_box_formats_and_units():
    xywh_normalized = GuiModality(box_format="xywh", box_units="normalized")
    gui = xywh_normalized.decode(screenshot_sample([0.5, 0.5, 0.25, 0.5]))["decoded"]["gui"]
    assert gui["box_pixels"] == pytest.approx([112, 56, 168, 112])


def test_out_of_bounds_box_is_an_error_naming_the_sample_or_clipped_on_request():
    with pytest.raises(DataError, match="'shot-1'.*beyond the 224x112"):
        GuiModality().decode(screenshot_sample([200, 10, 240, 50]))
    gui = GuiModality(out_of_bounds="clip").decode(screenshot_sample([200, 10, 240, 50]))["decoded"]["gui"]
    assert gui["clipped"] is True and gui["box_pixels"] == [200, 10, 224, 50]
    with pytest.raises(DataError, match="wholly outside"):
        GuiModality(out_of_bounds="clip").decode(screenshot_sample([300, 10, 340, 50]))
    with pytest.raises(DataError, match="'box'"):
        GuiModality().decode({"id": "x", "images": [Image.new("RGB", (56, 56))]})


def test_resolution_prompting_states_the_model_input_size(tiny_vl_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Click the OK button."}]}]
    sample = screenshot_sample([112, 56, 168, 112])
    encoding = MODALITIES.get("gui")(resolution_prompt=True).encode_prompt(processor, messages, sample)
    assert "Click the OK button. The image resolution is 140x56 pixels." in encoding.text
    assert sample["decoded"]["gui"]["model_size"] == [140, 56]  # what the tiny processor's budget gives
    plain = GuiModality().encode_prompt(processor, messages, screenshot_sample([112, 56, 168, 112]))
    assert "resolution" not in plain.text and messages[0]["content"][1]["text"] == "Click the OK button."


def decoded_sample(coordinates="model_pixels"):
    return GuiModality(coordinates=coordinates, min_pixels=56 * 56, max_pixels=112 * 112).decode(screenshot_sample([112, 56, 168, 112]))


def test_rewards_by_hand():
    sample = decoded_sample()  # box [70, 28, 105, 56] in a 140x56 model image
    completions = ["<answer>(70, 28)</answer>", "(104, 55)", "<answer>(69, 40)</answer>", "no point"]
    assert gui_point_in_box(completions, [sample] * 4) == [1.0, 1.0, 0.0, 0.0]
    # centre (87.5, 42) = (0.625, 0.75) normalised; (73.5, 42) is 14 px = 0.1 left of it.
    soft = gui_point_distance(["(73.5, 42)", "(87.5, 42)", "x"], [sample] * 3, kind="gaussian", scale=0.1)
    assert soft == pytest.approx([math.exp(-0.5), 1.0, 0.0])
    assert gui_point_distance(["(73.5, 42)"], [sample], kind="linear", scale=0.5) == pytest.approx([0.8])
    # to the box: (56, 42) is 14 px = 0.1 left of the box edge
    assert gui_point_distance(["(56, 42)", "(80, 40)"], [sample] * 2, target="box", kind="linear", scale=0.2) == pytest.approx([0.5, 1.0])
    assert gui_click_format(["<answer>(70, 28)</answer>", " <answer>( 1.5 , 2 )</answer> ", "(70, 28)",
                             "<answer>(141, 10)</answer>", "<answer>(1, 2)</answer> extra"], [sample] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert soft_click_value(0.3, kind="linear", scale=0.2) == 0.0
    with pytest.raises(DataError, match="decoded"):
        gui_point_in_box(["(1, 1)"], [{"id": "raw"}])
    assert {"gui_point_in_box", "gui_point_distance", "gui_click_format"} <= set(REWARDS.names())


def test_rewards_in_normalized_convention():
    sample = decoded_sample("normalized")
    assert gui_point_in_box(["(0.6, 0.9)", "(0.4, 0.9)"], [sample] * 2) == [1.0, 0.0]
    assert gui_click_format(["<answer>(0.6, 0.9)</answer>", "<answer>(60, 90)</answer>"], [sample] * 2) == [1.0, 0.0]


def test_screenspot_style_fixture_rows(tmp_path):
    from mmpost.data import load_rows

    rows = load_rows(write_tiny_screenshot_rows(tmp_path))
    modality = GuiModality(box_format="xywh")
    decoded = [modality.decode(row, row["_root"]) for row in rows]
    assert decoded[1]["decoded"]["gui"]["box_pixels"] == [56, 8, 104, 24]
    assert gui_point_in_box(["(80, 16)", "(80, 16)"], [decoded[1], decoded[0]]) == [1.0, 0.0]
