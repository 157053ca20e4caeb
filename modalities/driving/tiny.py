"""A tiny DriveLM-format fixture on disk (one scene, one key frame, six small camera frames, two QA items).

The driving modality runs on the tiny Qwen2.5-VL (`tiny-qwen2.5-vl`); this builds data in the real DriveLM
layout (`image_paths` as "../nuscenes/samples/CAM_*/<file>.jpg", images under `samples/CAM_*`), so reader
and error-path tests need neither the real fixture nor nuScenes. `omit` leaves cameras out of `image_paths`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from PIL import Image

from .processing import NUSCENES_CAMERAS


def write_tiny_drivelm(out_dir: str | os.PathLike, *, size: tuple[int, int] = (64, 36), omit: Iterable[str] = ()) -> Path:
    """Write `train_sample.json` and `samples/CAM_*/tiny__CAM_*__0.jpg` under `out_dir`; return the JSON path."""
    out = Path(out_dir)
    omit = set(omit)
    image_paths = {}
    for index, camera in enumerate(NUSCENES_CAMERAS):
        folder = out / "samples" / camera
        folder.mkdir(parents=True, exist_ok=True)
        name = f"tiny__{camera}__0.jpg"
        Image.new("RGB", size, (30 * index, 100, 200 - 30 * index)).save(folder / name)
        if camera not in omit:
            image_paths[camera] = f"../nuscenes/samples/{camera}/{name}"
    qa = {
        "perception": [{"Q": "What are the important objects in the current scene?", "A": "There is a white sedan ahead."}],
        "prediction": [],
        "planning": [{"Q": "What actions should the ego vehicle take?", "A": "Keep going straight.", "tag": [1]}],
        "behavior": [],
    }
    data = {"scene0": {"scene_description": "A tiny test scene.",
                       "key_frames": {"frame0": {"key_object_infos": {}, "QA": qa, "image_paths": image_paths}}}}
    path = out / "train_sample.json"
    path.write_text(json.dumps(data, indent=1))
    return path
