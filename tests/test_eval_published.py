"""Benchmarks loaded from their published datasets (eval/published.py), tested offline on small local copies in the
published layouts (parquet, arrow, save_to_disk) built here: the conversion feeds the official loaders, images
land where the loaders look, the result is cached, and an unreachable hub id says what to do."""
import io
import json

import pytest
from PIL import Image

from mmpost.eval.common import BenchmarkDataError
from mmpost.eval.published import OFFLINE_HINT, is_published_copy, published_data_dir
from mmpost.registry import BENCHMARKS

import mmpost.eval  # noqa: F401


def picture(colour=(255, 0, 0), size=(40, 20)):
    return Image.new("RGB", size, colour)


def mathvista_copy(root):
    """AI4Math/MathVista's testmini split as the hub stores it: data/testmini-*.parquet, `decoded_image` an Image
    column, `precision` float64, `choices` null for free-form questions, `metadata` a struct."""
    import datasets

    rows = {
        "pid": ["1", "2", "3"], "question": ["What is x?", "Which colour?", "How long?"],
        "image": ["images/1.jpg", "images/2.jpg", "images/3.jpg"],
        "decoded_image": [picture((255, 0, 0)), picture((0, 255, 0)), picture((0, 0, 255))],
        "choices": [None, ["red", "green"], None], "unit": [None, None, "cm"], "precision": [None, None, 1.0],
        "answer": ["4", "green", "2.5"], "question_type": ["free_form", "multi_choice", "free_form"],
        "answer_type": ["integer", "text", "float"],
        "metadata": [{"category": "math-targeted-vqa", "language": "english"}] * 3,
        "query": ["Hint: ... Question: What is x?", "Hint: ... Question: Which colour?", "Hint: ... Question: How long?"],
    }
    features = datasets.Features({**{k: datasets.Value("string") for k in ("pid", "question", "image", "unit", "answer",
                                                                             "question_type", "answer_type", "query")},
                                  "decoded_image": datasets.Image(), "choices": datasets.Sequence(datasets.Value("string")),
                                  "precision": datasets.Value("float64"),
                                  "metadata": {"category": datasets.Value("string"), "language": datasets.Value("string")}})
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(root / "data" / "testmini-00000-of-00001.parquet")
    return root


def test_mathvista_from_a_local_copy_of_the_published_parquet(tmp_path, monkeypatch):
    copy = mathvista_copy(tmp_path / "MathVista")
    assert is_published_copy(copy) and not is_published_copy(tmp_path / "nothing")
    folder = published_data_dir("mathvista", source=copy, cache=tmp_path / "cache")
    spec = BENCHMARKS.get("mathvista")
    items = spec.load(folder)
    assert [i["pid"] for i in items] == ["1", "2", "3"] and items[1]["choices"] == ["red", "green"]
    assert items[2]["precision"] == 1 and isinstance(items[2]["precision"], int)  # float64 on the hub -> int
    assert "Hint:" in items[0]["query"] and items[0]["metadata"]["category"] == "math-targeted-vqa"
    image = spec.media(items[1], folder)["images"][0]
    assert Image.open(image).getpixel((3, 3)) == (0, 255, 0)
    # Cached: the second call reads neither the copy nor the network.
    import mmpost.eval.published as published

    monkeypatch.setattr(published, "_read", lambda *a, **k: pytest.fail("the converted folder should be reused"))
    assert published_data_dir("mathvista", source=copy, cache=tmp_path / "cache") == folder


def test_mathverse_from_a_save_to_disk_copy_and_wemath_from_a_parquet_file(tmp_path):
    import datasets

    mathverse = datasets.Dataset.from_dict({
        "sample_index": ["1", "2"], "problem_index": ["1", "1"], "problem_version": ["Text Dominant", "Vision Only"],
        "question": ["As shown, find the angle.", ""], "image": [picture(), picture((0, 0, 255))], "answer": ["A", "A"],
        "question_type": ["multi-choice", "multi-choice"], "metadata": [{"split": "testmini"}] * 2,
        "query_wo": ["q1", "q2"], "query_cot": ["c1", "c2"], "question_for_eval": ["e1", "e2"]},
    ).cast_column("image", datasets.Image())
    mathverse.save_to_disk(tmp_path / "MathVerse")
    folder = published_data_dir("mathverse", source=tmp_path / "MathVerse", cache=tmp_path / "cache")
    spec = BENCHMARKS.get("mathverse")
    items = spec.load(folder)
    assert [i["problem_version"] for i in items] == ["Text Dominant", "Vision Only"]
    assert Image.open(spec.media(items[1], folder)["images"][0]).getpixel((1, 1)) == (0, 0, 255)

    wemath = datasets.Dataset.from_dict({
        "ID": ["1", "1", "1"], "split": ["testmini"] * 3, "knowledge concept": ["Angles"] * 3,
        "question": ["q-a", "q-b", "q-ab"], "option": ["A. 1; B. 2"] * 3, "answer": ["A", "B", "A"],
        "image_path": [picture(), picture(), picture((0, 255, 0))], "key": ["2steps_1", "2steps_2", "2steps_multi"],
        "question number": [1, 2, 3], "knowledge concept description": ["..."] * 3},
    ).cast_column("image_path", datasets.Image())
    wemath.to_parquet(tmp_path / "wemath.parquet")
    folder = published_data_dir("wemath", source=tmp_path / "wemath.parquet", cache=tmp_path / "cache")
    spec = BENCHMARKS.get("wemath")
    items = spec.load(folder)
    assert [spec.item_id(i, n) for n, i in enumerate(items)] == ["1/2steps_1", "1/2steps_2", "1/2steps_multi"]
    assert Image.open(spec.media(items[2], folder)["images"][0]).getpixel((1, 1)) == (0, 255, 0)


def test_screenspot_published_boxes_come_back_exactly_and_a_changed_layout_is_refused(tmp_path):
    import datasets

    rows = {"file_name": ["mobile_1.png", "pc_2.png", "web_3.png"], "instruction": ["open menu", "close", "search"],
            "bbox": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.75, 1.0], [0.0, 0.0, 0.5, 0.25]],
            "data_type": ["icon", "text", "text"], "data_source": ["ios", "windows", "shop"],
            "image": [picture(size=(200, 100)), picture(size=(400, 300)), picture(size=(80, 40))]}
    table = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    table.to_parquet(tmp_path / "screenspot.parquet")
    folder = published_data_dir("screenspot", source=tmp_path / "screenspot.parquet", cache=tmp_path / "cache")
    items = BENCHMARKS.get("screenspot").load(folder)
    by_instruction = {i["instruction"]: i for i in items}
    assert {i["platform"] for i in items} == {"mobile", "desktop", "web"} and by_instruction["close"]["platform"] == "desktop"
    for source_box, instruction in zip(rows["bbox"], rows["instruction"]):
        assert by_instruction[instruction]["box"] == pytest.approx(source_box)  # normalised xyxy -> SeeClick px xywh -> back
    pixel_boxes = table.map(lambda row: {"bbox": [10.0, 20.0, 30.0, 40.0]})
    pixel_boxes.to_parquet(tmp_path / "pixels.parquet")
    with pytest.raises(BenchmarkDataError, match="not normalised"):
        published_data_dir("screenspot", source=tmp_path / "pixels.parquet", cache=tmp_path / "cache")


def test_refcoco_splits_from_a_dataset_dict_copy(tmp_path):
    import datasets

    def split(ids):
        return datasets.Dataset.from_dict({
            "question_id": ids, "image": [picture(size=(100, 50)) for _ in ids], "question": ["box?"] * len(ids),
            "answer": [["the red square", "left one"]] * len(ids), "bbox": [[10.0, 5.0, 20.0, 10.0]] * len(ids),
            "segmentation": [[1.0, 2.0]] * len(ids)}).cast_column("image", datasets.Image())

    datasets.DatasetDict({"val": split(["v1"]), "testA": split(["a1", "a2"])}).save_to_disk(tmp_path / "RefCOCO")
    spec = BENCHMARKS.get("refcoco")
    val = spec.load(published_data_dir("refcoco", source=tmp_path / "RefCOCO", cache=tmp_path / "cache"))
    test_a = spec.load(published_data_dir("refcoco", source=tmp_path / "RefCOCO", split="testA", cache=tmp_path / "cache"))
    assert [i["id"] for i in val] == ["v1_0", "v1_1"] and len(test_a) == 4
    assert (val[0]["width"], val[0]["height"]) == (100, 50)


def test_missing_columns_and_unwired_benchmarks_say_what_to_do(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"pid": ["1"], "question": ["q"]}).to_parquet(tmp_path / "odd.parquet")
    with pytest.raises(BenchmarkDataError, match=r"lacks the published column\(s\).*decoded_image.*AI4Math/MathVista"):
        published_data_dir("mathvista", source=tmp_path / "odd.parquet", cache=tmp_path / "cache")
    with pytest.raises(BenchmarkDataError, match="videomme: no published dataset is wired.*--data"):
        published_data_dir("videomme", cache=tmp_path / "cache")


def test_offline_hub_id_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    """`mmpost eval --benchmark mathvista` without --data goes to the hub; offline it stops before loading the model,
    with one line saying what to do."""
    import datasets

    from mmpost.cli import main

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMPOST_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "--model", str(tmp_path / "no-model"), "--benchmark", "mathvista", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "AI4Math/MathVista (split testmini)" in err and OFFLINE_HINT in err


def test_eval_runs_a_model_on_the_published_copy(tiny_vl_dir, tmp_path, monkeypatch):
    """`mmpost eval --benchmark screenspot --data <local copy of rootsautomation/ScreenSpot>`: converted, generated,
    scored by the official rule (a tiny random model clicks nowhere useful; the counts are what is checked)."""
    import datasets

    from mmpost.eval.cli import eval_main

    monkeypatch.setenv("MMPOST_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "ScreenSpot"
    (copy / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({
        "file_name": ["a.png", "b.png"], "instruction": ["open menu", "close"], "bbox": [[0.1, 0.1, 0.5, 0.5]] * 2,
        "data_type": ["icon", "text"], "data_source": ["android", "macos"], "image": [picture(size=(112, 112))] * 2,
    }).cast_column("image", datasets.Image()).to_parquet(copy / "data" / "test-00000-of-00001.parquet")
    assert eval_main(["--model", str(tiny_vl_dir), "--benchmark", "screenspot", "--data", str(copy),
                      "--max-new-tokens", "4", "--output", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["screenspot"]
    assert results["n_samples"] == 2 and results["counts"]["total"] == 2 and str(tmp_path / "cache") in results["data"]
