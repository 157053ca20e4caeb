"""ScreenSpot / ScreenSpot-v2 / ScreenSpot-Pro GUI grounding: point in box.

Official rule (SeeClick `screenspot_test.py`; likaixin2000 `eval_screenspot_pro.py`): the ground-truth
box is normalised by the image size (v1/v2 JSON boxes are pixel [x, y, w, h], Pro boxes pixel
[x1, y1, x2, y2] with `img_size` = [W, H]); the predicted click point, normalised to [0, 1], is
correct iff x1 <= x <= x2 and y1 <= y <= y2 (closed interval). An output that does not parse is
wrong and stays in the denominator (`wrong_format`). A predicted box counts by its centre.

The model's coordinate convention must be declared (`coords`), never guessed:
"normalized" ([0, 1]), "grid1000" (0-1000, Qwen-VL), "pixels" (pixels of the original image) or
"resized_pixels" (pixels of the resized model input; pass `input_size` = (W, H) per prediction).
Breakdowns: per platform/group x element type (text/icon), and overall.

Mode "lmms_eval" reproduces lmms-eval's ScreenSpot v1 REC task `screenspot_rec_test`
(`lmms_eval/tasks/screenspot/utils_rec.py`: `parse_float_sequence_within`, `screenspot_rec_process_result`,
`compute_iou`, `compute_accuracy`, `compute_center_accuracy`, `screenspot_rec_aggregation_result`), which asks
for a *box* in normalised coordinates rather than a click:
- the ground truth is the row's box as normalised [x1, y1, x2, y2] (lmms-eval reads `bbox` of the HF mirror
  `rootsautomation/ScreenSpot`, already normalised xyxy; here the loader's `box`);
- the prediction is the FIRST "[a, b, c, d]" in the text (same regex as RefCOCO, see
  `mmpost.eval.scorers.refcoco.lmms_eval_parse_box`), taken as normalised as is: `coords` is not applied,
  points "(x, y)" and parenthesised boxes do not parse; an unparsable output becomes [0, 0, 0, 0] and stays
  in the denominator (counted in `unparseable`/`wrong_format`);
- metrics: mean IoU, ACC@{0.1,0.3,0.5,0.7,0.9} (IoU >= t) and Center_ACC (predicted box centre in the
  ground-truth box, closed bounds; the number comparable to click accuracy);
- breakdown: mobile/desktop/web x text/icon with lmms-eval's substring rule on `data_source`: contains
  "ios" or "android" -> mobile, else contains "macos" or "windows" -> desktop, else web (any unknown source
  counts as web); `data_type` == "text" -> text, anything else -> icon; an empty group reports 0.
lmms-eval's ScreenSpot-v2/-Pro point-in-box tasks (`tasks/screenspot_v2/utils.py`, `tasks/screenspot_pro/`)
are not reproduced by this mode.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import BENCHMARKS, SCORERS
from mmpost.rewards.geometry import point_in_box
from mmpost.rewards.parsing import parse_box, parse_point

from mmpost.eval.scorers.refcoco import lmms_eval_parse_box, mean_rec_metrics, rec_metrics
from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, make_result, read_json_rows, require_fields,
    resolve_media_path, sample_record,
)

NAME = "screenspot"
MODES = ("official", "lmms_eval")
LMMS_EVAL_GROUPS = ("mobile_text", "mobile_icon", "web_text", "web_icon", "desktop_text", "desktop_icon")
COORDINATE_CONVENTIONS = ("normalized", "grid1000", "pixels", "resized_pixels")
V1_SPLITS = {"mobile": "screenspot_mobile.json", "desktop": "screenspot_desktop.json", "web": "screenspot_web.json"}
V2_SPLITS = {"mobile": "screenspot_mobile_v2.json", "desktop": "screenspot_desktop_v2.json", "web": "screenspot_web_v2.json"}


def load_screenspot(data_dir: str | Path, limit: int | None = None, *, version: str = "v1") -> list[dict]:
    """Read the official JSON files. v1/v2: `screenspot_{mobile,desktop,web}[_v2].json` rows
    {img_filename, instruction, bbox [x,y,w,h] px, data_type, data_source}; image sizes come from the
    row (`img_size`) or the image file. Pro: every `*.json` under `data_dir/annotations` with
    {img_filename, instruction, bbox [x1,y1,x2,y2] px, img_size, ui_type, group, ...}."""
    data_dir = Path(data_dir)
    items: list[dict] = []
    if version == "pro":
        folder = data_dir / "annotations"
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not files:
            raise BenchmarkDataError(f"ScreenSpot-Pro: no annotation *.json files in {folder}")
        for path in files:
            for row in read_json_rows(path, "ScreenSpot-Pro annotations", ["img_filename", "instruction", "bbox", "img_size", "ui_type"]):
                width, height = row["img_size"]
                x1, y1, x2, y2 = row["bbox"]
                items.append({**row, "platform": row.get("group", row.get("platform")), "element_type": row["ui_type"],
                              "box": [x1 / width, y1 / height, x2 / width, y2 / height]})
    elif version in ("v1", "v2"):
        for platform, filename in (V1_SPLITS if version == "v1" else V2_SPLITS).items():
            path = data_dir / filename
            for row in read_json_rows(path, f"ScreenSpot {version} annotations", ["img_filename", "instruction", "bbox", "data_type"]):
                width, height = row.get("img_size") or _image_size(data_dir, row["img_filename"], path)
                x, y, w, h = row["bbox"]
                items.append({**row, "platform": platform, "element_type": row["data_type"],
                              "box": [x / width, y / height, (x + w) / width, (y + h) / height]})
    else:
        raise ValueError(f"ScreenSpot version must be 'v1', 'v2' or 'pro', got {version!r}")
    return items[:limit] if limit is not None else items


def _image_size(data_dir: Path, filename: str, annotation: Path) -> tuple[int, int]:
    from PIL import Image

    for folder in (data_dir / "images", data_dir):
        if (folder / filename).is_file():
            with Image.open(folder / filename) as image:
                return image.size
    raise BenchmarkDataError(f"ScreenSpot: image {filename} named in {annotation} not found under {data_dir}/images")


def load_screenspot_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """A JSON list of rows, each with the annotation fields (incl. normalised `box`) and `response`."""
    return read_json_rows(path, "ScreenSpot predictions", ["box", "response", "element_type", "platform"])


def build_prompt(item: dict) -> str:
    return (f"In this UI screenshot, what is the position of the element corresponding to the command "
            f"\"{item['instruction']}\" (with point)?")


def to_normalized(x: float, y: float, coords: str, image_size: tuple[float, float] | None = None,
                  input_size: tuple[float, float] | None = None) -> tuple[float, float]:
    """Convert a point from the declared convention to [0, 1] image coordinates."""
    if coords == "normalized":
        return x, y
    if coords == "grid1000":
        return x / 1000, y / 1000
    if coords == "pixels":
        if image_size is None:
            raise ValueError("coords='pixels' needs the original image size (width, height)")
        return x / image_size[0], y / image_size[1]
    if coords == "resized_pixels":
        if input_size is None:
            raise ValueError("coords='resized_pixels' needs the model input size (width, height)")
        return x / input_size[0], y / input_size[1]
    raise ValueError(f"unknown coordinate convention {coords!r}; choose one of {COORDINATE_CONVENTIONS}")


def extract(item: dict, output: str, *, coords: str) -> tuple[float, float] | None:
    """The click point in [0, 1]: a box's centre if the output holds 4 numbers in brackets, else a point."""
    box = parse_box(output)
    if box is not None:
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    else:
        point = parse_point(output)
        if point is None:
            return None
        x, y = point
    return to_normalized(x, y, coords, item.get("img_size"), item.get("input_size"))


def lmms_eval_group(data_source: str, data_type: str) -> str:
    """lmms-eval's ScreenSpot breakdown key (`screenspot_rec_aggregation_result`): substring tests in the
    order ios/android -> mobile, macos/windows -> desktop, else web; non-"text" types count as icon."""
    if "ios" in data_source or "android" in data_source:
        platform = "mobile"
    elif "macos" in data_source or "windows" in data_source:
        platform = "desktop"
    else:
        platform = "web"
    return f"{platform}_{'text' if data_type == 'text' else 'icon'}"


def _score_lmms_eval(predictions: list[dict]) -> dict:
    per_sample: list[dict[str, float]] = []
    by_group: dict[str, list[dict[str, float]]] = {group: [] for group in LMMS_EVAL_GROUPS}
    samples = []
    unparseable = 0
    for index, item in enumerate(predictions):
        require_fields(item, ["box", "response", "data_source", "data_type"], f"ScreenSpot prediction {item.get('id', index)}")
        parsed = lmms_eval_parse_box(item["response"])
        unparseable += parsed is None
        predicted = parsed if parsed is not None else [0.0, 0.0, 0.0, 0.0]
        metrics = rec_metrics(list(item["box"]), predicted)
        per_sample.append(metrics)
        by_group[lmms_eval_group(str(item["data_source"]), str(item["data_type"]))].append(metrics)
        samples.append(sample_record(item.get("id", index), None, item["response"], predicted, item["box"],
                                     metrics["Center_ACC"], **metrics))
    total = len(per_sample)
    breakdown = {"group": {group: {**mean_rec_metrics(rows), "total": len(rows)} for group, rows in by_group.items()}}
    return make_result(NAME, "lmms_eval", mean_rec_metrics(per_sample), total=total, answered=total - unparseable,
                       unparseable=unparseable, breakdown=breakdown, samples=samples,
                       extra_counts={"correct": int(sum(sample["Center_ACC"] for sample in per_sample)),
                                     "wrong_format": unparseable},
                       notes=["lmms-eval screenspot_rec: predicted box read as normalised [x1, y1, x2, y2]; "
                              "unparsable -> [0, 0, 0, 0]; `coords` not applied"])


def score_screenspot(predictions: list[dict], *, mode: str = "official", coords: str = "normalized") -> dict:
    """Click accuracy overall, per platform/group, per element type and per platform x type.

    mode="lmms_eval": lmms-eval's REC metrics {IoU, ACC@0.1..0.9, Center_ACC} (see module docstring); needs
    `data_source` and `data_type` on every row; `correct` counts Center_ACC hits.
    """
    check_mode(mode, MODES, NAME)
    if mode == "lmms_eval":
        return _score_lmms_eval(predictions)
    if coords not in COORDINATE_CONVENTIONS:
        raise ValueError(f"ScreenSpot: coords must be declared as one of {COORDINATE_CONVENTIONS}, got {coords!r}")
    rows: list[tuple[dict, bool]] = []
    samples = []
    wrong_format = 0
    for index, item in enumerate(predictions):
        point = extract(item, item["response"], coords=coords)
        correct = point is not None and point_in_box(point, item["box"])
        wrong_format += point is None
        rows.append((item, correct))
        samples.append(sample_record(item.get("id", index), build_prompt(item) if "instruction" in item else None,
                                     item["response"], point, item["box"], float(correct)))
    total = len(rows)
    correct_count = sum(ok for _, ok in rows)
    breakdown = {
        "platform": accuracy_table((item["platform"], ok) for item, ok in rows),
        "element_type": accuracy_table((item["element_type"], ok) for item, ok in rows),
        "platform_x_type": accuracy_table((f"{item['platform']}/{item['element_type']}", ok) for item, ok in rows),
    }
    return make_result(NAME, mode, {"accuracy": correct_count / total if total else 0.0}, total=total,
                       answered=total - wrong_format, unparseable=wrong_format, breakdown=breakdown, samples=samples,
                       extra_counts={"correct": correct_count, "wrong_format": wrong_format},
                       notes=[f"model coordinate convention: {coords}"])


def media(item: dict, data_dir: Path) -> dict:
    return {"images": [resolve_media_path(data_dir, item["img_filename"], f"ScreenSpot {item['instruction']!r}",
                                          ("images", ""))]}


SCORERS.add(NAME, score_screenspot)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_screenspot, build_prompt=build_prompt, extract=extract, score=score_screenspot,
    load_predictions=load_screenspot_predictions, modes=MODES, media=media,
    description="ScreenSpot v1/v2/Pro click accuracy (point in box, closed bounds)",
))
