"""The tiny Qwen2.5-VL zoo entry: builds, loads through the hub code path, and generates from an image."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from mmpost.modalities.image import ImageModality
from mmpost.modalities.image.tiny import mrope_section_for
from mmpost.registry import MODEL_ZOO


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return MODEL_ZOO.get("tiny-qwen2.5-vl")(tmp_path_factory.mktemp("zoo") / "tiny")


def test_mrope_section_matches_qwen_split():
    assert mrope_section_for(128) == [16, 24, 24]  # Qwen2.5-VL-7B's config
    assert mrope_section_for(16) == [2, 3, 3]
    with pytest.raises(ValueError, match="even head_dim"):
        mrope_section_for(15)


def test_saved_files_and_config(tiny_dir):
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (tiny_dir / name).is_file(), name
    config = json.loads((tiny_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tokenizer.convert_tokens_to_ids
    assert config["model_type"] == "qwen2_5_vl"
    assert config["image_token_id"] == ids("<|image_pad|>")
    assert config["video_token_id"] == ids("<|video_pad|>")
    assert config["vision_start_token_id"] == ids("<|vision_start|>")
    text = config["text_config"]
    assert text["vocab_size"] == len(tokenizer)
    assert text["eos_token_id"] == ids("<|im_end|>") and text["pad_token_id"] == ids("<|endoftext|>")
    assert text["rope_parameters"]["mrope_section"] == [2, 3, 3]
    # rope_theta 10, not the hub's 1e6: at 1e6 head_dim 16 cannot tell image columns apart (benchmarks/warmstart_study.py)
    assert text["rope_parameters"]["rope_theta"] == 10.0
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (64, 2, 4)
    vision = config["vision_config"]
    assert (vision["depth"], vision["hidden_size"], vision["out_hidden_size"]) == (2, 32, 64)
    generation = json.loads((tiny_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == ids("<|im_end|>") and generation["pad_token_id"] == ids("<|endoftext|>")


def test_same_seed_same_weights_other_seed_other_weights(tiny_dir, tmp_path):
    again = MODEL_ZOO.get("tiny-qwen2.5-vl")(tmp_path / "again", seed=0)
    other = MODEL_ZOO.get("tiny-qwen2.5-vl")(tmp_path / "other", seed=1)
    weights = load_file(tiny_dir / "model.safetensors")
    same = load_file(again / "model.safetensors")
    different = load_file(other / "model.safetensors")
    assert weights.keys() == same.keys()
    assert all(torch.equal(weights[k], same[k]) for k in weights)
    assert not all(torch.equal(weights[k], different[k]) for k in weights)
    assert sum(t.numel() for t in weights.values()) < 300_000


def test_loads_through_auto_classes_and_generates_from_an_image(tiny_dir):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"

    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (112, 112, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What shape?"}]}]
    inputs = processor(
        text=[processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)],
        images=[image],
        return_tensors="pt",
    )
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 8]]  # 112x112 -> 8x8 patches -> 16 merged tokens
    media_pads = [processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>")]
    torch.manual_seed(0)
    output = model.generate(
        **inputs, max_new_tokens=8, min_new_tokens=8, do_sample=True, temperature=1.5, suppress_tokens=media_pads
    )
    prompt_length = inputs["input_ids"].shape[1]
    completion = output[0, prompt_length:]
    assert completion.numel() == 8
    assert not any(token in media_pads for token in completion.tolist())

    # The scoring forward over prompt + completion (what RL does next) accepts the sequence.
    modality = ImageModality()
    encoding = modality.encode_prompt(processor, messages, {"id": "zoo", "images": [image]})
    assert torch.equal(encoding.input_ids, inputs["input_ids"][0])
    with torch.no_grad():
        logits = model(
            input_ids=output,
            mm_token_type_ids=torch.tensor(processor.create_mm_token_type_ids(output)),
            **encoding.media,
        ).logits
    assert logits.shape == (1, prompt_length + 8, len(processor.tokenizer))
