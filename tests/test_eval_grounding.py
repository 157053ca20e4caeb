"""ScreenSpot point-in-box, RefCOCO IoU and MVBench check_ans against hand-computed cases.

No real ScreenSpot/RefCOCO/MVBench rows exist on GitHub (they live only on HF), so rows are
hand-written from the documented schemas.
"""
from __future__ import annotations

import json

import pytest

from mmpost.eval.scorers import mvbench, refcoco, screenspot
from mmpost.registry import BENCHMARKS, SCORERS


def test_point_in_box_border_inclusive():
    box = [0.2, 0.2, 0.4, 0.5]
    assert screenspot.point_in_box((0.2, 0.5), box) and screenspot.point_in_box((0.4, 0.2), box)
    assert not screenspot.point_in_box((0.4001, 0.3), box)


def test_screenspot_v1_loader_and_conventions(tmp_path):
    rows = [{"img_filename": "a.png", "instruction": "open menu", "bbox": [100, 50, 100, 50], "data_type": "icon",
             "data_source": "ios", "img_size": [1000, 500]}]
    for filename in screenspot.V1_SPLITS.values():
        (tmp_path / filename).write_text(json.dumps(rows))
    items = screenspot.load_screenspot(tmp_path)
    assert len(items) == 3 and items[0]["box"] == [0.1, 0.1, 0.2, 0.2]  # xywh px -> normalised xyxy
    item = items[0]
    predictions = [
        dict(item, response="(0.15, 0.2)"),  # on the bottom border: correct
        dict(item, response="[100, 50, 200, 100]", platform="web"),  # read as normalised: centre (150, 75) is off-screen -> wrong
        dict(item, response="I cannot find it", platform="desktop"),
    ]
    result = screenspot.score_screenspot(predictions)
    assert result["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert result["counts"]["wrong_format"] == 1
    grid = screenspot.score_screenspot([dict(item, response="(150, 150)")], coords="grid1000")
    assert grid["metrics"]["accuracy"] == 1.0
    pixels = screenspot.score_screenspot([dict(item, response="(150, 75)")], coords="pixels")
    assert pixels["metrics"]["accuracy"] == 1.0  # 150/1000, 75/500
    resized = screenspot.score_screenspot([dict(item, response="(30, 15)", input_size=(200, 100))], coords="resized_pixels")
    assert resized["metrics"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="declared"):
        screenspot.score_screenspot([], coords="guess")


def test_screenspot_pro_loader(tmp_path):
    (tmp_path / "annotations").mkdir()
    row = {"img_filename": "x.png", "instruction": "save", "bbox": [10, 20, 30, 60], "img_size": [100, 200],
           "ui_type": "text", "group": "Office"}
    (tmp_path / "annotations" / "word.json").write_text(json.dumps([row]))
    item = screenspot.load_screenspot(tmp_path, version="pro")[0]
    assert item["box"] == [0.1, 0.1, 0.3, 0.3] and item["platform"] == "Office"


def test_iou_by_hand():
    assert refcoco.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert refcoco.box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    item = {"bbox": [0, 0, 10, 10], "width": 100, "height": 100, "split": "val"}
    # [0,0,10,5] overlaps half of the GT: IoU = 50/100 = 0.5, exactly at the threshold -> correct
    result = refcoco.score_refcoco([dict(item, response="[0, 0, 10, 5]"), dict(item, response="[0, 0, 10, 4]"),
                                    dict(item, response="none")])
    assert result["metrics"]["acc@0.5"] == pytest.approx(1 / 3) and result["counts"]["unparseable"] == 1
    normalized = refcoco.score_refcoco([dict(item, response="[0.0, 0.0, 0.1, 0.1]")], coords="normalized")
    assert normalized["metrics"]["mean_iou"] == pytest.approx(1.0)


def test_mvbench_check_ans_quirks():
    assert mvbench.check_ans("(B) dog", "(B) dog") and mvbench.check_ans("B.", "(B) dog") and mvbench.check_ans("b", "(B) dog")
    assert not mvbench.check_ans("The answer is B", "(B) dog")
    assert mvbench.check_ans("", "(B) dog")  # official quirk: empty is a substring of every option
    item = {"candidates": ["cat", "dog"], "answer": "dog", "question": "?", "task": "action"}
    result = mvbench.score_mvbench([dict(item, response="B) dog"), dict(item, response="")])
    assert result["metrics"]["accuracy"] == 1.0 and result["counts"]["empty_credited"] == 1


def test_registered():
    for name in ("screenspot", "refcoco", "mvbench"):
        assert name in SCORERS.names() and BENCHMARKS.get(name).name == name
