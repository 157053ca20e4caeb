"""RefCOCO / RefCOCO+ / RefCOCOg referring-expression comprehension: Acc@0.5.

One predicted box per referring expression; correct iff IoU(predicted, ground truth) >= 0.5, with
IoU = intersection / (area_pred + area_gt - intersection), intersection clamped at 0 and an empty
union scoring 0. Ground-truth boxes are COCO pixel [x, y, w, h]; predictions are pixel [x1, y1, x2, y2]
after converting from the model's declared convention ("pixels", "normalized", "grid1000").
An unparsable output scores 0 and stays in the denominator.

Mode "lmms_eval" reproduces lmms-eval's `refcoco_bbox_rec` tasks (`lmms_eval/tasks/refcoco/utils_rec.py`:
`refcoco_bbox_rec_preprocess_dataset`, `parse_float_sequence_within`, `refcoco_bbox_rec_process_result`,
`compute_iou`, `compute_accuracy`, `compute_center_accuracy`, `refcoco_bbox_rec_aggregation_result`):
- the ground truth is COCO [x, y, w, h] divided by the image width/height into normalised [x1, y1, x2, y2];
- the prediction is the FIRST "[a, b, c, d]" in the text, each number an optional "-", digits and an
  optional ".digits", each comma directly after its number (", " allowed, " ," not); no parentheses, no
  "1e-3", no ".5"; the numbers are
  taken as normalised as is (no rescaling, no clipping, no corner reordering: the prompt asks for [0, 1]);
- an output without such a sequence becomes [0, 0, 0, 0]: it scores IoU 0 and (unless the ground-truth box
  touches the origin) Center_ACC 0, and stays in the denominator;
- metrics, each a mean over expressions: IoU, ACC@t = IoU >= t for t in 0.1/0.3/0.5/0.7/0.9, and Center_ACC
  = the predicted box's centre lies in the ground-truth box (closed bounds).
lmms-eval divides by the union without a guard (ZeroDivisionError on an empty union); here that case scores 0.
"""
from __future__ import annotations

import re
from pathlib import Path

from mmpost.registry import BENCHMARKS, SCORERS
from mmpost.rewards.geometry import box_centre, box_iou, point_in_box, xywh_to_xyxy
from mmpost.rewards.parsing import parse_box

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, data_file, make_result, read_json_rows, require_fields,
    resolve_media_path, sample_record,
)

NAME = "refcoco"
MODES = ("official", "lmms_eval")
REC_METRICS = ("IoU", "ACC@0.1", "ACC@0.3", "ACC@0.5", "ACC@0.7", "ACC@0.9", "Center_ACC")
_NUMBER = r"(-?\d+(?:\.\d+)?)"
# lmms-eval's pattern: the comma must follow the number directly; whitespace only after commas and at the ends.
_LMMS_BRACKETED_FOUR = re.compile(r"\[\s*" + r",\s*".join([_NUMBER] * 4) + r"\s*\]")


def lmms_eval_parse_box(output: str) -> list[float] | None:
    """The first "[a, b, c, d]" in `output` as 4 floats, or None (lmms-eval then uses [0, 0, 0, 0]).

    lmms-eval `tasks/refcoco/utils_rec.py` and `tasks/screenspot/utils_rec.py`: `parse_float_sequence_within`.
    """
    match = _LMMS_BRACKETED_FOUR.search(output)
    return [float(value) for value in match.groups()] if match else None


def rec_metrics(ground_truth: list[float], predicted: list[float]) -> dict[str, float]:
    """lmms-eval's per-sample REC metrics for two [x1, y1, x2, y2] boxes in the same units.

    IoU (`compute_iou`), ACC@t = float(IoU >= t) (`compute_accuracy`) and Center_ACC = float(centre of
    `predicted` inside `ground_truth`, closed bounds) (`compute_center_accuracy`).
    """
    iou = box_iou(ground_truth, predicted)
    center_inside = point_in_box(box_centre(predicted), ground_truth)
    metrics = {"IoU": iou}
    metrics.update({f"ACC@{threshold}": float(iou >= threshold) for threshold in (0.1, 0.3, 0.5, 0.7, 0.9)})
    metrics["Center_ACC"] = float(center_inside)
    return metrics


def mean_rec_metrics(per_sample: list[dict[str, float]]) -> dict[str, float]:
    """Each REC metric averaged over samples; 0 for an empty list (as lmms-eval's ScreenSpot aggregation)."""
    count = len(per_sample)
    return {name: sum(sample[name] for sample in per_sample) / count if count else 0.0 for name in REC_METRICS}


def normalized_xyxy(bbox_xywh: list[float], width: float, height: float) -> list[float]:
    """COCO pixel [x, y, w, h] -> [x1, y1, x2, y2] in [0, 1] (`refcoco_bbox_rec_preprocess_dataset`)."""
    x, y, w, h = bbox_xywh
    return [x / width, y / height, (x + w) / width, (y + h) / height]


def load_refcoco(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """A JSON list of rows {question_id, answer (expressions), bbox [x,y,w,h] px, width, height, split}
    in `data_dir/refcoco.json`, exploded to one item per referring expression."""
    items = []
    for index, row in enumerate(read_json_rows(data_file(data_dir, "refcoco.json"), "RefCOCO annotations", ["bbox", "answer"])):
        expressions = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        for number, expression in enumerate(expressions):
            items.append({**row, "id": f"{row.get('question_id', index)}_{number}", "expression": expression})
    return items[:limit] if limit is not None else items


def load_refcoco_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    return read_json_rows(path, "RefCOCO predictions", ["bbox", "response"])


def build_prompt(item: dict) -> str:
    return f"Locate {item['expression']} in the image and output its bounding box as [x1, y1, x2, y2]."


def extract(item: dict, output: str, *, coords: str = "pixels") -> list[float] | None:
    box = parse_box(output)
    if box is None:
        return None
    if coords == "pixels":
        return list(box)
    scale = {"normalized": 1.0, "grid1000": 1000.0}.get(coords)
    if scale is None:
        raise ValueError(f"RefCOCO: unknown coordinate convention {coords!r}")
    width, height = item["width"], item["height"]
    return [box[0] / scale * width, box[1] / scale * height, box[2] / scale * width, box[3] / scale * height]


def score_refcoco(predictions: list[dict], *, mode: str = "official", coords: str = "pixels", threshold: float = 0.5) -> dict:
    """Acc@0.5 (IoU >= threshold) overall and per split, plus mean IoU.

    mode="lmms_eval": lmms-eval's REC metrics (see module docstring); `coords` and `threshold` are ignored
    there (lmms-eval reads the predicted numbers as normalised and reports ACC@0.1..0.9).
    """
    check_mode(mode, MODES, NAME)
    if mode == "lmms_eval":
        return _score_lmms_eval(predictions)
    rows, samples, ious = [], [], []
    unparseable = 0
    for index, item in enumerate(predictions):
        box = extract(item, item["response"], coords=coords)
        iou = box_iou(box, xywh_to_xyxy(item["bbox"])) if box is not None else 0.0
        unparseable += box is None
        ious.append(iou)
        rows.append((item.get("split", "all"), iou >= threshold))
        samples.append(sample_record(item.get("id", index), None, item["response"], box, item["bbox"], float(iou >= threshold), iou=iou))
    total = len(rows)
    correct = sum(ok for _, ok in rows)
    return make_result(NAME, mode, {"acc@0.5": correct / total if total else 0.0, "mean_iou": sum(ious) / total if total else 0.0},
                       total=total, answered=total - unparseable, unparseable=unparseable,
                       breakdown={"split": accuracy_table(rows)}, samples=samples, extra_counts={"correct": correct})


def _score_lmms_eval(predictions: list[dict]) -> dict:
    per_sample: list[dict[str, float]] = []
    by_split: dict[str, list[dict[str, float]]] = {}
    samples = []
    unparseable = 0
    for index, item in enumerate(predictions):
        where = f"RefCOCO prediction {item.get('id', index)}"
        require_fields(item, ["width", "height"], where)
        if not item["width"] or not item["height"]:
            raise BenchmarkDataError(f"{where}: width/height must be positive, got {item['width']}x{item['height']}")
        ground_truth = normalized_xyxy(item["bbox"], item["width"], item["height"])
        parsed = lmms_eval_parse_box(item["response"])
        unparseable += parsed is None
        predicted = parsed if parsed is not None else [0.0, 0.0, 0.0, 0.0]
        metrics = rec_metrics(ground_truth, predicted)
        per_sample.append(metrics)
        by_split.setdefault(str(item.get("split", "all")), []).append(metrics)
        samples.append(sample_record(item.get("id", index), None, item["response"], predicted, ground_truth,
                                     metrics["ACC@0.5"], **metrics))
    total = len(per_sample)
    breakdown = {"split": {split: {**mean_rec_metrics(rows), "total": len(rows)} for split, rows in by_split.items()}}
    return make_result(NAME, "lmms_eval", mean_rec_metrics(per_sample), total=total, answered=total - unparseable,
                       unparseable=unparseable, breakdown=breakdown, samples=samples,
                       extra_counts={"correct": int(sum(sample["ACC@0.5"] for sample in per_sample))},
                       notes=["lmms-eval refcoco_bbox_rec: predicted box read as normalised [x1, y1, x2, y2]; "
                              "unparsable -> [0, 0, 0, 0]"])


def media(item: dict, data_dir: Path) -> dict:
    """The row's image file (`file_name`, `image_path` or `image`) under `data_dir` or `data_dir/images`."""
    source = item.get("file_name") or item.get("image_path") or item.get("image")
    if not isinstance(source, str) or not source:
        raise BenchmarkDataError(f"RefCOCO {item.get('id')}: no image file name (`file_name`, `image_path` or `image`)")
    return {"images": [resolve_media_path(data_dir, source, f"RefCOCO {item.get('id')}")]}


SCORERS.add(NAME, score_refcoco)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_refcoco, build_prompt=build_prompt, extract=extract, score=score_refcoco,
    load_predictions=load_refcoco_predictions, modes=MODES, description="RefCOCO/+/g REC Acc@0.5", media=media,
))
