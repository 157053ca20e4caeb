"""The data layouts users have (TRL, verl, LLaVA/ShareGPT, LLaMA-Factory, mmpost's own) in JSONL, JSON, parquet,
arrow, folders and save_to_disk folders, read through `datasets` and mapped onto the vqa task's rows. Each test
writes a small file in the published layout and checks the mapped rows, the images the image modality decodes
from them, and the errors for rows that do not fit."""
import io
import json

import pytest
from PIL import Image

from mmpost.registry import MODALITIES
from mmpost.tasks.vqa import VQATask
from mmpost.tasks.vqa_formats import detect_format, load_table, open_vqa_rows, to_vqa_row
from mmpost.types import DataError
from conftest import REPO, tiny_overrides

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def png_bytes(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (28, 28), COLOURS[colour]).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded_colours(rows):
    """The colour of each row's first image, as the image modality decodes it (paths against the row's root)."""
    modality = MODALITIES.get("image")()
    colours = []
    for row in rows:
        image = modality.decode(row, row.get("_root"))["decoded"]["images"][0]
        colours.append(next(name for name, rgb in COLOURS.items() if image.getpixel((5, 5)) == rgb))
    return colours


def test_trl_prompt_and_embedded_pil_images_in_parquet(tmp_path):
    import datasets

    features = datasets.Features({"prompt": datasets.Value("string"), "image": datasets.Image(),
                                  "solution": datasets.Value("string")})
    table = datasets.Dataset.from_dict({"prompt": ["<image>What colour is this?", "Which colour?"],
                                        "image": [Image.open(io.BytesIO(png_bytes(c))) for c in ("red", "blue")],
                                        "solution": ["red", "blue"]}, features=features)
    table.to_parquet(tmp_path / "trl.parquet")
    rows = open_vqa_rows(tmp_path / "trl.parquet")
    assert rows.layout == "trl" and len(rows) == 2
    assert [(r["id"], r["problem"], r["answer"]) for r in rows] == [("0", "What colour is this?", "red"), ("1", "Which colour?", "blue")]
    assert isinstance(rows[0]["images"][0], Image.Image)  # the Image column comes back decoded
    assert decoded_colours(rows) == ["red", "blue"]


def test_trl_conversational_prompt_with_typed_parts_and_paths_in_jsonl(tmp_path):
    (tmp_path / "img").mkdir()
    Image.open(io.BytesIO(png_bytes("green"))).save(tmp_path / "img" / "g.png")
    row = {"prompt": [{"role": "system", "content": "Answer briefly."},
                      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}],
           "images": ["img/g.png"], "solution": "green"}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    rows = open_vqa_rows(tmp_path / "train.jsonl")
    assert rows[0]["problem"] == "What colour?" and rows[0]["system"] == "Answer briefly." and rows[0]["answer"] == "green"
    assert rows[0]["_root"] == str(tmp_path) and decoded_colours(rows) == ["green"]
    task = VQATask(path=str(tmp_path / "train.jsonl"))
    messages = task.prompt(task.load("train")[0])
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]}
    assert messages[1]["content"][0] == {"type": "image"}


def verl_rows():
    return {"data_source": ["hiyouga/geometry3k", "hiyouga/geometry3k"],
            "prompt": [[{"role": "user", "content": "<image>Find x. Put the answer in \\boxed{}."}],
                       [{"role": "system", "content": "You are a tutor."}, {"role": "user", "content": "<image>What colour?"}]],
            "images": [[{"bytes": png_bytes("red"), "path": None}], [{"bytes": png_bytes("blue"), "path": "b.png"}]],
            "ability": ["math", "math"],
            "reward_model": [{"style": "rule", "ground_truth": "3"}, {"style": "rule", "ground_truth": "blue"}],
            "extra_info": [{"split": "train", "index": 7}, {"split": "train", "index": 8}]}


def test_verl_rl_parquet_written_by_pyarrow(tmp_path):
    """verl's layout (examples/data_preprocess/geo3k.py): chat `prompt`, `images` as {bytes, path} records,
    `reward_model.ground_truth`, `data_source`, `extra_info.index`; written without datasets' metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(verl_rows()), tmp_path / "train.parquet")
    rows = open_vqa_rows(tmp_path / "train.parquet")
    assert rows.layout == "verl"
    assert [(r["id"], r["problem"], r["answer"], r["data_source"]) for r in rows] == [
        ("7", "Find x. Put the answer in \\boxed{}.", "3", "hiyouga/geometry3k"), ("8", "What colour?", "blue", "hiyouga/geometry3k")]
    assert rows[1]["system"] == "You are a tutor." and rows[0]["reward_model"]["style"] == "rule"
    assert isinstance(rows[0]["images"][0], bytes) and decoded_colours(rows) == ["red", "blue"]


def test_verl_parquet_written_by_datasets_and_its_arrow_file(tmp_path):
    import datasets

    table = datasets.Dataset.from_dict({**verl_rows(), "images": [[Image.open(io.BytesIO(png_bytes(c)))] for c in ("red", "blue")]},
                                       features=None).cast_column("images", datasets.Sequence(datasets.Image()))
    table.to_parquet(tmp_path / "verl.parquet")
    assert decoded_colours(open_vqa_rows(tmp_path / "verl.parquet")) == ["red", "blue"]
    table.save_to_disk(tmp_path / "saved")
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    rows = open_vqa_rows(arrow)
    assert rows.layout == "verl" and [r["answer"] for r in rows] == ["3", "blue"] and decoded_colours(rows) == ["red", "blue"]
    assert [r["answer"] for r in open_vqa_rows(tmp_path / "saved")] == ["3", "blue"]  # the save_to_disk folder itself


def test_llava_sharegpt_json_and_llama_factory_json(tmp_path):
    Image.open(io.BytesIO(png_bytes("red"))).save(tmp_path / "r.png")
    llava = [{"id": "000001", "image": "r.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the square?"}, {"from": "gpt", "value": "Red."}]}]
    (tmp_path / "llava.json").write_text(json.dumps(llava))
    rows = open_vqa_rows(tmp_path / "llava.json")
    assert rows.layout == "llava" and (rows[0]["id"], rows[0]["problem"], rows[0]["answer"]) == ("000001", "What colour is the square?", "Red.")
    assert decoded_colours(rows) == ["red"]

    factory = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>Colour?"},
                             {"role": "assistant", "content": "red"}], "images": ["r.png"]}]
    (tmp_path / "factory.json").write_text(json.dumps(factory))
    rows = open_vqa_rows(tmp_path / "factory.json")
    assert rows.layout == "llama_factory" and (rows[0]["problem"], rows[0]["answer"], rows[0]["system"]) == ("Colour?", "red", "Be brief.")
    assert decoded_colours(rows) == ["red"]


def test_folder_of_parquet_files_and_dataset_dict_splits(tmp_path):
    import datasets

    folder = tmp_path / "data"
    folder.mkdir()
    for name, colour in (("a", "red"), ("b", "green")):
        datasets.Dataset.from_dict({"problem": [f"colour {name}?"], "answer": [colour], "images": [[png_bytes(colour)]]}
                                   ).to_parquet(folder / f"{name}.parquet")
    rows = open_vqa_rows(folder)
    assert rows.layout == "mmpost" and sorted(r["answer"] for r in rows) == ["green", "red"]

    splits = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"question": ["q1", "q2"], "label": ["red", "blue"], "img": [[png_bytes("red")], [png_bytes("blue")]]}),
        "test": datasets.Dataset.from_dict({"question": ["q3"], "label": ["green"], "img": [[png_bytes("green")]]})})
    splits.save_to_disk(tmp_path / "dict")
    task = VQATask(path=str(tmp_path / "dict"), heldout_path=str(tmp_path / "dict"),
                   columns={"problem": "question", "answer": "label", "images": "img"})
    assert [r["answer"] for r in task.load("train")] == ["red", "blue"] and [r["answer"] for r in task.load("heldout")] == ["green"]
    assert decoded_colours(task.load("heldout")) == ["green"]
    with pytest.raises(DataError, match="no split 'validation'"):
        VQATask(path=str(tmp_path / "dict"), train_split="validation", columns={"problem": "question", "answer": "label"}).load("train")


def test_errors_name_the_file_row_and_layout(tmp_path):
    (tmp_path / "odd.jsonl").write_text(json.dumps({"question": "q", "label": "a"}) + "\n")
    with pytest.raises(DataError, match=r"odd\.jsonl: cannot tell the data layout from the columns \['label', 'question'\]"):
        open_vqa_rows(tmp_path / "odd.jsonl")
    with pytest.raises(DataError, match=r"columns names column\(s\) \['query'\]"):
        open_vqa_rows(tmp_path / "odd.jsonl", columns={"problem": "query"})
    rows = [{"prompt": [{"role": "user", "content": "<image>q"}], "reward_model": {"style": "rule", "ground_truth": "a"}},
            {"prompt": [{"role": "user", "content": "<image>q"}], "reward_model": {"style": "rule"}}]
    (tmp_path / "verl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"verl\.jsonl:2 \(verl layout\): no answer .*reward_model.ground_truth"):
        open_vqa_rows(tmp_path / "verl.jsonl")
    kept = open_vqa_rows(tmp_path / "verl.jsonl", skip_bad_rows=True)
    assert len(kept) == 1 and len(kept.skipped) == 1
    with pytest.raises(DataError, match="unknown chat role 'narrator'"):
        to_vqa_row({"messages": [{"role": "narrator", "content": "x"}]}, "llama_factory", position=0)
    with pytest.raises(DataError, match="data file or folder not found"):
        load_table(tmp_path / "missing.parquet")
    assert detect_format(["prompt", "reward_model", "images"]) == "verl"


def test_a_hub_id_goes_through_datasets_and_says_what_to_do_offline(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="nobody/no-such-dataset.*offline.*give a local file or folder"):
        load_table("nobody/no-such-dataset")


def test_training_on_a_verl_parquet(tiny_vl_dir, tmp_path):
    """The mapped rows train end to end (SFT on the demonstrations, then held-out accuracy on the same file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import mmpost

    pq.write_table(pa.table(verl_rows()), tmp_path / "train.parquet")
    data = tmp_path / "train.parquet"
    overrides = tiny_overrides(tiny_vl_dir, tmp_path / "run", **{"train.steps": 1, "data.prompts_per_step": 2}) + [
        "data.task=vqa", f"data.task_args={{path: {data}, heldout_path: {data}}}"]
    summary = mmpost.train(mmpost.load_config(REPO / "recipes" / "sft.yaml", overrides))
    assert summary["steps"] == 1 and 0.0 <= summary["heldout_accuracy_after"] <= 1.0
