"""Image modality: loading errors, Qwen-VL's pixel budget, prompt encoding and batching by concatenation."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from mmpost.modalities.image import ImageModality, build_tiny_qwen2_5_vl, fit_pixels, load_image, resized_size
from mmpost.registry import MODALITIES
from mmpost.types import DataError, MediaError, Modality


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_message(text: str, num_images: int = 1) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}] * num_images + [{"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return AutoProcessor.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()


# -- load_image ---------------------------------------------------------------------------------


def test_load_image_missing_file_names_it(tmp_path):
    with pytest.raises(MediaError, match=r"nowhere\.png.*file not found"):
        load_image("nowhere.png", root=tmp_path)


def test_load_image_corrupt_file_names_it(tmp_path):
    (tmp_path / "x.png").write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(MediaError, match=r"x\.png.*not a readable image"):
        load_image(tmp_path / "x.png")


def test_load_image_truncated_png_names_it(tmp_path):
    data = png_bytes(noise_image(64, 64))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    # The header parses; only a full decode finds the missing pixel data.
    with pytest.raises(MediaError, match=r"cut\.png.*truncated"):
        load_image("cut.png", root=tmp_path)


def test_load_image_zero_size_and_bad_inputs():
    with pytest.raises(MediaError, match="zero-size"):
        load_image(Image.new("RGB", (0, 5)))
    with pytest.raises(MediaError, match="base64"):
        load_image("data:image/png;base64,@@@not-base64@@@")
    with pytest.raises(MediaError, match="unsupported source type int"):
        load_image(3)
    with pytest.raises(MediaError, match="remote URLs"):
        load_image("https://example.com/a.png")


def test_load_image_accepts_paths_bytes_data_uris_and_pil(tmp_path):
    original = noise_image(30, 20)
    data = png_bytes(original)
    (tmp_path / "img.png").write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    loaded = [
        load_image("img.png", root=tmp_path),
        load_image(str(tmp_path / "img.png")),
        load_image(data),
        load_image(uri),
        load_image(original),
    ]
    for image in loaded:
        assert image.mode == "RGB" and image.size == (30, 20)
        assert np.array_equal(np.asarray(image), np.asarray(original))


def test_load_image_flattens_transparency_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


# -- pixel budget -------------------------------------------------------------------------------


def test_resized_size_worked_examples():
    tiny = dict(min_pixels=56 * 56, max_pixels=112 * 112)
    assert resized_size(112, 112, **tiny) == (112, 112)  # already multiples of 28, area 12544 = max
    # 100 -> round(100/28)*28 = 112, 50 -> 56; area 6272 lies in [3136, 12544].
    assert resized_size(100, 50, **tiny) == (112, 56)
    # 1000x500: beta = sqrt(500000/12544) = 6.313; floor(1000/6.313/28) = 5 -> 140, floor(500/6.313/28) = 2 -> 56.
    assert resized_size(1000, 500, **tiny) == (140, 56)
    # 300x200: beta = sqrt(60000/12544) = 2.187; floor(137.2/28) = 4 -> 112, floor(91.4/28) = 3 -> 84.
    assert resized_size(300, 200, **tiny) == (112, 84)
    # Default budget (Qwen2-VL processor's 56*56 .. 28*28*1280): 1000x500 only rounds to 1008x504.
    assert resized_size(1000, 500) == (1008, 504)
    with pytest.raises(ValueError, match="min_pixels"):
        resized_size(10, 10, min_pixels=100, max_pixels=50)


def test_fit_pixels_resizes_only_when_needed():
    image = noise_image(300, 200)
    fitted = fit_pixels(image, min_pixels=56 * 56, max_pixels=112 * 112)
    assert fitted.size == (112, 84)
    already = noise_image(112, 56)
    assert fit_pixels(already, min_pixels=56 * 56, max_pixels=112 * 112) is already


# -- decode -------------------------------------------------------------------------------------


def test_modality_is_registered_and_fits_the_protocol():
    assert MODALITIES.get("image") is ImageModality
    assert isinstance(ImageModality(), Modality)
    with pytest.raises(ValueError, match="must not exceed"):
        ImageModality(min_pixels=200, max_pixels=100)


def test_decode_loads_images_and_sizes(tmp_path):
    noise_image(300, 200).save(tmp_path / "a.png")
    noise_image(112, 112, seed=1).save(tmp_path / "b.png")
    sample = {"id": "s1", "images": ["a.png", "b.png"], "problem": "?"}
    modality = ImageModality(min_pixels=56 * 56, max_pixels=112 * 112)
    decoded = modality.decode(sample, root=tmp_path)
    assert "decoded" not in sample  # a shallow copy; the input row is untouched
    assert decoded["problem"] == "?"
    assert [image.size for image in decoded["decoded"]["images"]] == [(300, 200), (112, 112)]
    assert decoded["decoded"]["image_sizes"] == [(300, 200), (112, 112)]
    assert decoded["decoded"]["model_image_sizes"] == [(112, 84), (112, 112)]
    single = modality.decode({"id": "s2", "images": "b.png"}, root=tmp_path)
    assert single["decoded"]["image_sizes"] == [(112, 112)]
    assert modality.decode({"id": "text-only"})["decoded"]["images"] == []


def test_decode_error_names_sample_and_file(tmp_path):
    with pytest.raises(MediaError, match=r"sample 'row-7'.*gone\.jpg.*file not found"):
        ImageModality().decode({"id": "row-7", "images": ["gone.jpg"]}, root=tmp_path)


def test_extreme_aspect_ratio_is_a_media_error():
    sample = {"id": "thin", "images": [Image.new("RGB", (500, 2))]}
    with pytest.raises(MediaError, match=r"sample 'thin'.*aspect ratio"):
        ImageModality().decode(sample)


# -- encode_prompt ------------------------------------------------------------------------------


def test_encode_prompt_shapes(processor):
    modality = ImageModality()
    sample = modality.decode({"id": 1, "images": [noise_image(112, 112), noise_image(300, 200, seed=2)]})
    encoding = modality.encode_prompt(processor, image_message("Compare them.", 2), sample)
    grid = encoding.media["image_grid_thw"]
    # The tiny processor's budget is 56*56 .. 112*112: 112x112 -> 8x8 patches, 300x200 -> 112x84 = 6x8 patches.
    assert grid.tolist() == [[1, 8, 8], [1, 6, 8]]
    assert grid.dtype == torch.long
    merged_tokens = (grid.prod(dim=1) // 4).tolist()  # spatial merge 2x2
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((encoding.input_ids == image_pad).sum()) == sum(merged_tokens) == 16 + 12
    assert encoding.media["pixel_values"].shape == (64 + 48, 3 * 2 * 14 * 14)
    assert encoding.input_ids.dim() == 1 and encoding.input_ids.dtype == torch.long
    assert encoding.text.startswith("<|im_start|>system\n") and encoding.text.endswith("<|im_start|>assistant\n")
    assert encoding.text.count("<|image_pad|>") == 2  # before the processor expands it
    assert sample["decoded"]["model_image_sizes"] == [(112, 112), (112, 84)]


def test_encode_prompt_budget_option_overrides_processor(processor):
    modality = ImageModality(min_pixels=28 * 28, max_pixels=56 * 56)
    sample = {"id": "small", "images": [noise_image(112, 112)]}
    encoding = modality.encode_prompt(processor, image_message("Hi"), sample)
    assert encoding.media["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert sample["decoded"]["model_image_sizes"] == [(56, 56)]  # decoded here, sizes as the model saw them


def test_encode_prompt_text_only_has_no_media(processor):
    encoding = ImageModality().encode_prompt(processor, [{"role": "user", "content": "2 + 2?"}], {"id": "t"})
    assert encoding.media == {}
    assert processor.tokenizer.decode(encoding.input_ids).endswith("2 + 2?<|im_end|>\n<|im_start|>assistant\n")


def test_encode_prompt_placeholder_mismatch_names_sample(processor):
    modality = ImageModality()
    with pytest.raises(DataError, match=r"sample 'm1'.*2 image placeholder\(s\).*1 image\(s\)"):
        modality.encode_prompt(processor, image_message("?", 2), {"id": "m1", "images": [noise_image(56, 56)]})
    with pytest.raises(MediaError, match=r"sample 'm2'.*no `images` field"):
        modality.encode_prompt(processor, image_message("?"), {"id": "m2"})


def test_encodings_concatenate_into_the_same_batch_as_the_processor(processor, model):
    """Rows encoded one by one, then concatenated (media along dim 0, ids left-padded), give the same
    logits as the processor called on both prompts at once with padding."""
    modality = ImageModality()
    samples = [
        {"id": "a", "images": [noise_image(112, 112, seed=3)]},
        {"id": "b", "images": [noise_image(112, 56, seed=4)]},
    ]
    messages = [image_message("What colour is it?"), image_message("Count the red squares, then answer.")]
    encodings = [modality.encode_prompt(processor, m, s) for m, s in zip(messages, samples)]
    assert encodings[0].input_ids.numel() != encodings[1].input_ids.numel()

    pad = processor.tokenizer.pad_token_id
    width = max(e.input_ids.numel() for e in encodings)
    input_ids = torch.full((2, width), pad, dtype=torch.long)
    attention_mask = torch.zeros((2, width), dtype=torch.long)
    for row, encoding in enumerate(encodings):
        input_ids[row, width - encoding.input_ids.numel():] = encoding.input_ids
        attention_mask[row, width - encoding.input_ids.numel():] = 1
    media = {key: torch.cat([e.media[key] for e in encodings], dim=0) for key in encodings[0].media}
    # transformers 5 builds Qwen-VL's 3D (M-RoPE) positions only when it gets mm_token_type_ids.
    mm_token_type_ids = torch.tensor(processor.create_mm_token_type_ids(input_ids))

    fitted = [fit_pixels(s["decoded"]["images"][0], min_pixels=56 * 56, max_pixels=112 * 112) for s in samples]
    reference = processor(
        text=[e.text for e in encodings], images=fitted, padding=True, padding_side="left", return_tensors="pt"
    )
    assert torch.equal(reference["input_ids"], input_ids)
    assert torch.equal(reference["image_grid_thw"], media["image_grid_thw"])
    assert torch.equal(reference["pixel_values"], media["pixel_values"])

    with torch.no_grad():
        ours = model(
            input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm_token_type_ids, **media
        ).logits
        theirs = model(**reference).logits
        alone = model(
            input_ids=encodings[1].input_ids[None],
            mm_token_type_ids=torch.tensor(processor.create_mm_token_type_ids(encodings[1].input_ids[None])),
            **encodings[1].media,
        ).logits
    valid = attention_mask.bool()
    torch.testing.assert_close(ours[valid], theirs[valid], rtol=1e-5, atol=1e-5)
    # Padding does not change a row: the shorter prompt alone gives the same logits.
    torch.testing.assert_close(ours[1][valid[1]], alone[0], rtol=1e-4, atol=1e-4)
