"""The tiny Qwen-style tokenizer: byte-level round trip, special tokens, task tags and the chat template."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer, Qwen2Tokenizer

from mmpost.tokenizer import (
    QWEN_SPECIAL_TOKENS,
    TASK_TAG_TOKENS,
    build_tiny_tokenizer,
    default_corpus,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(extra_special_tokens=["<|box_start|>"])


TEXTS = [
    "What colour is the circle?",
    "The red square is at (12, 87) and the box is [10, 20, 30, 40].",
    "<think>3 + 4 = 7</think> <answer>7</answer>",
    "The final answer is \\boxed{42}.",
    "Ünïcödé, 中文, emoji 🙂 and tabs\tand\nnewlines  double  spaces",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_any_text_round_trips(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_vocab_is_small_and_contains_the_byte_alphabet(tokenizer):
    # 512 trained entries (256 bytes + 12 specials + merges) plus the 4 task tags.
    assert len(tokenizer) == 512 + len(TASK_TAG_TOKENS)
    # Every single byte symbol exists, so no text ever needs an unknown token.
    assert tokenizer.unk_token is None


def test_special_tokens_are_single_ids_and_roles_are_set(tokenizer):
    for token in QWEN_SPECIAL_TOKENS + ("<|box_start|>",):
        ids = tokenizer(token)["input_ids"]
        assert ids == [tokenizer.convert_tokens_to_ids(token)], token
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0  # first, as in Qwen
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.eos_token_id != tokenizer.pad_token_id


def test_task_tags_are_single_ordinary_tokens(tokenizer):
    for tag in TASK_TAG_TOKENS:
        assert len(tokenizer(tag)["input_ids"]) == 1, tag
    ids = tokenizer("<|im_start|>assistant\n<think>so</think><answer>7</answer><|im_end|>")["input_ids"]
    # skip_special_tokens drops the chat markup but keeps the tags that rewards parse.
    assert tokenizer.decode(ids, skip_special_tokens=True) == "assistant\n<think>so</think><answer>7</answer>"
    tag_ids = {tokenizer.convert_tokens_to_ids(tag) for tag in TASK_TAG_TOKENS}
    assert tag_ids.isdisjoint(tokenizer.all_special_ids)


def test_common_task_words_are_merged(tokenizer):
    # Trained merges make frequent corpus words one token each ("Ġ" marks the leading space).
    assert tokenizer.convert_ids_to_tokens(tokenizer("The red circle")["input_ids"]) == ["The", "Ġred", "Ġcircle"]


def test_chat_template_matches_qwen2_5_vl_layout(tokenizer):
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}],
        }
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many circles?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_system_video_string_content_and_no_generation_prompt(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "video"}, {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>1</answer>"}]},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nA<|vision_start|><|video_pad|><|vision_end|>"
        "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n<answer>1</answer><|im_end|>\n"
    )
    numbered = tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}],
        tokenize=False,
        add_vision_id=True,
    )
    assert "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: <|vision_start|>" in numbered


def test_saved_tokenizer_reloads_identically_as_auto_and_as_qwen2(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    text = "<|im_start|>user\nThe blue star at (3, 4) <answer>yes</answer> ü<|im_end|>"
    expected = tokenizer(text)["input_ids"]
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), Qwen2Tokenizer.from_pretrained(tmp_path)):
        assert loaded(text)["input_ids"] == expected
        assert loaded.eos_token == "<|im_end|>" and loaded.pad_token == "<|endoftext|>"
    assert AutoTokenizer.from_pretrained(tmp_path).chat_template == tokenizer.chat_template


def test_default_corpus_is_deterministic_and_covers_task_strings():
    corpus = default_corpus()
    assert corpus == default_corpus()
    assert corpus != default_corpus(seed=1)
    assert len(corpus) == 3000
    joined = "\n".join(corpus)
    for needle in ("<answer>", "</think>", "\\boxed{", ", ", "[", "("):
        assert needle in joined


def test_training_is_deterministic():
    first = build_tiny_tokenizer(default_corpus(num_lines=300), vocab_size=300)
    second = build_tiny_tokenizer(default_corpus(num_lines=300), vocab_size=300)
    assert first.get_vocab() == second.get_vocab()


def test_too_small_vocab_is_refused():
    with pytest.raises(ValueError, match="vocab_size=100"):
        build_tiny_tokenizer(["a b c"], vocab_size=100)
