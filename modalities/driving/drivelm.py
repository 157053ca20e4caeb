"""A reader for DriveLM-nuScenes QA files (`v1_1_train_nus.json`, `challenge/data/train_sample.json`).

Schema: {scene_token: {"scene_description", "key_frames": {frame_token: {"key_object_infos", "QA":
{"perception", "prediction", "planning", "behavior": [{"Q", "A", "C", "con_up", "con_down", "cluster",
"layer", ("tag")}]}, "image_paths": {CAM_*: "../nuscenes/samples/CAM_*/<file>.jpg"}}}}}.
One sample per QA item; ids are "<scene>_<frame>_<i>" with i counting perception, prediction, planning,
then behavior items, as DriveLM's `challenge/convert2llama.py` numbers them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from mmpost.types import DataError, Sample

QA_CATEGORIES: tuple[str, ...] = ("perception", "prediction", "planning", "behavior")


def resolve_camera_path(raw: str, json_dir: Path, images_root: Path | None) -> Path:
    """Where a DriveLM image path points: `images_root`/raw, the JSON folder/raw, or the part from the last
    `samples/` component under `images_root` (else the JSON folder). The first that exists wins; if none does,
    the `samples/` form (else `images_root`/raw) is returned, so the decode error names a plausible location."""
    raw_path = Path(raw)
    bases = [b for b in (images_root, json_dir) if b is not None]
    candidates = [base / raw_path for base in bases]
    parts = raw_path.parts
    tails: list[Path] = []
    if "samples" in parts:
        tail = Path(*parts[len(parts) - 1 - parts[::-1].index("samples"):])
        tails = [base / tail for base in bases]
    for candidate in candidates + tails:
        if candidate.is_file():
            return candidate
    return (tails or candidates)[0]


def read_drivelm(path: str | os.PathLike, *, images_root: str | os.PathLike | None = None,
                 categories: Iterable[str] = QA_CATEGORIES) -> list[Sample]:
    """QA samples of a DriveLM file: `id`, `cameras` {CAM_*: absolute path}, `problem` (Q), `answer` (A),
    `category`, `tag` (when present), `scene`, `frame`, `scene_description`, `key_object_infos`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: DriveLM file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a DriveLM file maps scene tokens to scenes; got a {type(data).__name__}")
    categories = tuple(categories)
    unknown = [c for c in categories if c not in QA_CATEGORIES]
    if unknown:
        raise DataError(f"DriveLM categories {unknown} unknown; expected some of {list(QA_CATEGORIES)}")
    root = Path(images_root) if images_root is not None else None
    samples: list[Sample] = []
    for scene_token, scene in data.items():
        frames = (scene or {}).get("key_frames")
        if not isinstance(frames, dict):
            raise DataError(f"{path}: scene {scene_token} has no 'key_frames' mapping")
        for frame_token, frame in frames.items():
            where = f"{path}: scene {scene_token} frame {frame_token}"
            if not isinstance(frame.get("image_paths"), dict) or not isinstance(frame.get("QA"), dict):
                raise DataError(f"{where}: needs 'image_paths' and 'QA' mappings")
            cameras = {name: str(resolve_camera_path(raw, path.parent, root)) for name, raw in frame["image_paths"].items()}
            index = 0
            for category in QA_CATEGORIES:
                for item in frame["QA"].get(category, []):
                    qa_id = f"{scene_token}_{frame_token}_{index}"
                    index += 1
                    if category not in categories:
                        continue
                    if not isinstance(item, dict) or item.get("Q") is None or item.get("A") is None:
                        raise DataError(f"{where}: QA item {qa_id} ({category}) needs 'Q' and 'A'")
                    sample: Sample = {
                        "id": qa_id, "cameras": dict(cameras), "problem": item["Q"], "answer": item["A"],
                        "category": category, "scene": scene_token, "frame": frame_token,
                        "scene_description": scene.get("scene_description"),
                        "key_object_infos": frame.get("key_object_infos"), "_source": f"{path}: {qa_id}",
                    }
                    if item.get("tag") is not None:
                        sample["tag"] = item["tag"]
                    samples.append(sample)
    if not samples:
        raise DataError(f"{path}: no QA items (categories {list(categories)})")
    return samples
