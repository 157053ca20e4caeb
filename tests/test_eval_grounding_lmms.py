"""mode="lmms_eval" of the ScreenSpot and RefCOCO scorers against hand-computed numbers.

Reproduces lmms-eval `tasks/refcoco/utils_rec.py` and `tasks/screenspot/utils_rec.py` (REC metrics IoU,
ACC@0.1..0.9, Center_ACC; first "[a, b, c, d]" read as normalised; unparsable -> [0, 0, 0, 0]).
Rows are hand-written from the documented schemas.
"""
from __future__ import annotations

import pytest

from mmpost.eval.common import BenchmarkDataError
from mmpost.eval.scorers import refcoco, screenspot


def test_lmms_eval_parser_quirks():
    assert refcoco.lmms_eval_parse_box("box [0.1, 0.2, 0.3, 0.4] then [0.5,0.5,0.6,0.6]") == [0.1, 0.2, 0.3, 0.4]
    assert refcoco.lmms_eval_parse_box("[10,20,30,40]") == [10.0, 20.0, 30.0, 40.0]  # no rescaling
    assert refcoco.lmms_eval_parse_box("[-0.1, 0, 1, 1]") == [-0.1, 0.0, 1.0, 1.0]
    assert refcoco.lmms_eval_parse_box("[0.1 , 0.2, 0.3, 0.4]") is None  # space before a comma
    assert refcoco.lmms_eval_parse_box("(0.1, 0.2, 0.3, 0.4)") is None  # parentheses
    assert refcoco.lmms_eval_parse_box("[.1, 0.2, 0.3, 0.4]") is None  # no leading digit
    assert refcoco.lmms_eval_parse_box("[0.1, 0.2, 0.3]") is None


def test_rec_metrics_by_hand():
    # intersection 0.2*0.2 = 0.04, union 0.16 + 0.16 - 0.04 = 0.28 -> IoU 1/7; centre (0.4, 0.4) on the border
    metrics = refcoco.rec_metrics([0, 0, 0.4, 0.4], [0.2, 0.2, 0.6, 0.6])
    assert metrics["IoU"] == pytest.approx(1 / 7)
    assert metrics["ACC@0.1"] == 1.0 and metrics["ACC@0.3"] == 0.0 and metrics["Center_ACC"] == 1.0
    assert set(metrics) == set(refcoco.REC_METRICS)


def test_refcoco_lmms_eval_mode():
    # bbox xywh px [16, 16, 64, 32] in a 128x64 image -> normalised xyxy [0.125, 0.25, 0.625, 0.75]
    # (powers of two keep the arithmetic exact, so IoU 0.5 sits exactly on the ACC@0.5 threshold)
    item = {"bbox": [16, 16, 64, 32], "width": 128, "height": 64}
    predictions = [
        dict(item, response="[0.125, 0.25, 0.625, 0.75]", split="val"),  # exact: IoU 1
        # left half: intersection 0.25*0.5 = 0.125, union 0.25 + 0.125 - 0.125 = 0.25 -> IoU 0.5
        dict(item, response="It is [0.125, 0.25, 0.375, 0.75].", split="val"),
        dict(item, response="[16, 16, 80, 48]", split="testA"),  # pixels read as normalised: IoU 0, centre off
        dict(item, response="no box", split="testA"),  # -> [0, 0, 0, 0]
    ]
    result = refcoco.score_refcoco(predictions, mode="lmms_eval")
    assert result["mode"] == "lmms_eval"
    metrics = result["metrics"]
    assert metrics["IoU"] == pytest.approx(1.5 / 4)
    assert metrics["ACC@0.1"] == metrics["ACC@0.3"] == metrics["ACC@0.5"] == pytest.approx(0.5)
    assert metrics["ACC@0.7"] == metrics["ACC@0.9"] == pytest.approx(0.25)
    assert metrics["Center_ACC"] == pytest.approx(0.5)
    assert result["counts"] == {"total": 4, "answered": 3, "unparseable": 1, "correct": 2}
    split = result["breakdown"]["split"]
    assert split["val"]["IoU"] == pytest.approx(0.75) and split["val"]["total"] == 2
    assert split["testA"]["IoU"] == 0.0 and split["testA"]["Center_ACC"] == 0.0
    assert result["samples"][2]["extracted"] == [16.0, 16.0, 80.0, 48.0]
    assert result["samples"][3]["extracted"] == [0.0, 0.0, 0.0, 0.0]
    # the official scorer reads the same pixel box as pixels and counts it correct
    official = refcoco.score_refcoco([predictions[2]])
    assert official["mode"] == "official" and official["metrics"]["acc@0.5"] == 1.0


def test_refcoco_lmms_eval_zero_box_hits_origin_box():
    # quirk: an unparsable output is [0, 0, 0, 0]; its centre (0, 0) lies on a box touching the origin
    item = {"bbox": [0, 0, 10, 10], "width": 100, "height": 100, "response": "sorry"}
    result = refcoco.score_refcoco([item], mode="lmms_eval")
    assert result["metrics"]["Center_ACC"] == 1.0 and result["metrics"]["IoU"] == 0.0
    assert result["counts"]["unparseable"] == 1


def test_refcoco_lmms_eval_needs_image_size():
    with pytest.raises(BenchmarkDataError, match="width"):
        refcoco.score_refcoco([{"bbox": [0, 0, 1, 1], "response": "[0, 0, 1, 1]"}], mode="lmms_eval")
    with pytest.raises(ValueError, match="not supported"):
        refcoco.score_refcoco([], mode="vlmeval")


def test_screenspot_lmms_eval_mode():
    item = {"box": [0.1, 0.1, 0.2, 0.2], "platform": "mobile", "element_type": "text"}
    predictions = [
        dict(item, data_source="ios", data_type="text", response="[0.1, 0.1, 0.2, 0.2]"),  # IoU 1
        # IoU 0.0025 / 0.0175 = 1/7; centre (0.2, 0.2) on the border; macos -> desktop
        dict(item, data_source="macos", data_type="icon", response="[0.15, 0.15, 0.25, 0.25]"),
        dict(item, data_source="windows", data_type="text", response="(0.15, 0.15)"),  # a point: unparsable
        dict(item, data_source="gitlab", data_type="icon", response="[150, 150, 160, 160]"),  # not rescaled
    ]
    result = screenspot.score_screenspot(predictions, mode="lmms_eval")
    assert result["mode"] == "lmms_eval"
    metrics = result["metrics"]
    assert metrics["IoU"] == pytest.approx((1 + 1 / 7) / 4)
    assert metrics["ACC@0.1"] == pytest.approx(0.5) and metrics["ACC@0.3"] == pytest.approx(0.25)
    assert metrics["ACC@0.9"] == pytest.approx(0.25) and metrics["Center_ACC"] == pytest.approx(0.5)
    assert result["counts"] == {"total": 4, "answered": 3, "unparseable": 1, "correct": 2, "wrong_format": 1}
    group = result["breakdown"]["group"]
    assert list(group) == list(screenspot.LMMS_EVAL_GROUPS)
    assert group["desktop_icon"]["IoU"] == pytest.approx(1 / 7) and group["desktop_icon"]["total"] == 1
    assert group["mobile_text"]["ACC@0.9"] == 1.0
    assert group["desktop_text"]["Center_ACC"] == 0.0 and group["desktop_text"]["total"] == 1
    assert group["mobile_icon"] == {**{name: 0.0 for name in refcoco.REC_METRICS}, "total": 0}
    assert group["web_icon"]["total"] == 1 and group["web_text"]["total"] == 0
    # the official scorer clicks the point and the box centre: rows 1-3 correct there
    official = screenspot.score_screenspot(predictions)
    assert official["mode"] == "official" and official["metrics"]["accuracy"] == pytest.approx(3 / 4)


def test_screenspot_lmms_eval_group_rule_and_required_fields():
    assert screenspot.lmms_eval_group("android", "text") == "mobile_text"
    assert screenspot.lmms_eval_group("macos", "text") == "desktop_text"
    assert screenspot.lmms_eval_group("windows", "icon") == "desktop_icon"
    assert screenspot.lmms_eval_group("shop", "widget") == "web_icon"  # unknown type counts as icon
    assert screenspot.lmms_eval_group("ubuntu", "text") == "web_text"  # unknown source counts as web
    with pytest.raises(BenchmarkDataError, match="data_source"):
        screenspot.score_screenspot([{"box": [0, 0, 1, 1], "response": "[0, 0, 1, 1]", "data_type": "text"}],
                                    mode="lmms_eval")
