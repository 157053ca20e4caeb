"""RefCOCO / RefCOCO+ / RefCOCOg referring-expression comprehension: Acc@0.5.

One predicted box per referring expression; correct iff IoU(predicted, ground truth) >= 0.5, with
IoU = intersection / (area_pred + area_gt - intersection), intersection clamped at 0 and an empty
union scoring 0. Ground-truth boxes are COCO pixel [x, y, w, h]; predictions are pixel [x1, y1, x2, y2]
after converting from the model's declared convention ("pixels", "normalized", "grid1000").
An unparsable output scores 0 and stays in the denominator.
"""
from __future__ import annotations

from pathlib import Path

from mmpost.registry import BENCHMARKS, SCORERS
from mmpost.rewards.parsing import parse_box

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, accuracy_table, check_mode, make_result, read_json, require_fields,
    resolve_media_path, sample_record,
)

NAME = "refcoco"
MODES = ("official",)


def box_iou(first: list[float], second: list[float]) -> float:
    """IoU of two [x1, y1, x2, y2] boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    intersection = width * height
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - intersection
    return intersection / union if union > 0 else 0.0


def xywh_to_xyxy(box: list[float]) -> list[float]:
    return [box[0], box[1], box[0] + box[2], box[1] + box[3]]


def load_refcoco(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """A JSON list of rows {question_id, answer (expressions), bbox [x,y,w,h] px, width, height, split}
    in `data_dir/refcoco.json`, exploded to one item per referring expression."""
    path = Path(data_dir)
    if path.is_dir():
        path = path / "refcoco.json"
    rows = read_json(path, "RefCOCO annotations")
    if not isinstance(rows, list):
        raise BenchmarkDataError(f"RefCOCO: {path} must be a JSON list")
    items = []
    for index, row in enumerate(rows):
        require_fields(row, ["bbox", "answer"], f"RefCOCO {path} row {index}")
        expressions = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        for number, expression in enumerate(expressions):
            items.append({**row, "id": f"{row.get('question_id', index)}_{number}", "expression": expression})
    return items[:limit] if limit is not None else items


def load_refcoco_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    rows = read_json(path, "RefCOCO predictions")
    if not isinstance(rows, list):
        raise BenchmarkDataError(f"RefCOCO: {path} must be a JSON list")
    for index, row in enumerate(rows):
        require_fields(row, ["bbox", "response"], f"RefCOCO {path} row {index}")
    return rows


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
    """Acc@0.5 (IoU >= threshold) overall and per split, plus mean IoU."""
    check_mode(mode, MODES, NAME)
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
