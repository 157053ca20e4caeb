"""A small byte-level BPE tokenizer with Qwen's special tokens and Qwen2.5-VL's chat template.

Tiny real-architecture models (the model zoo) need a tokenizer that behaves like a Qwen tokenizer:
the same special tokens, the same pre-tokenizer (so any text, in any script, encodes), the same chat
template, but a vocabulary of a few hundred entries so the embedding matrix stays small. Nothing here
depends on a modality; the image, video and audio placeholder tokens are all present so every adapter
can use the same tokenizer.
"""
from __future__ import annotations

import random
from typing import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

# Token names looked up by Qwen2.5-VL's processor (`<|image_pad|>`, `<|video_pad|>`), by its chat
# template (`<|vision_start|>`, `<|vision_end|>`) and by Qwen2-Audio's processor (`<|AUDIO|>`,
# `<|audio_bos|>`, `<|audio_eos|>`). `<|endoftext|>` comes first so it gets id 0, as in Qwen.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|AUDIO|>",
)

# Task markup that rewards parse. They are ordinary (non-special) tokens so that decoding with
# `skip_special_tokens=True` keeps them, and single tokens so a format reward sees them appear at once.
TASK_TAG_TOKENS: tuple[str, ...] = ("<think>", "</think>", "<answer>", "</answer>")

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"

# Qwen2's pre-tokenizer split (the same one `transformers.Qwen2Tokenizer` builds), so a tokenizer saved
# here encodes text identically whether it is reloaded as a generic fast tokenizer or as Qwen2Tokenizer.
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2.5-VL's chat template, written out: a default system turn when the conversation has none, each
# turn as `<|im_start|>role\n...<|im_end|>\n`, an image part as `<|vision_start|><|image_pad|><|vision_end|>`
# (the processor later repeats `<|image_pad|>` once per merged patch), a video part likewise with
# `<|video_pad|>`, and `<|im_start|>assistant\n` when a generation prompt is asked for.
# `add_vision_id=True` prefixes "Picture k: " / "Video k: " as the original template does.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set counts = namespace(images=0, videos=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{% set counts.images = counts.images + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.images }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{% set counts.videos = counts.videos + 1 %}"
    "{% if add_vision_id %}Video {{ counts.videos }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

_WORDS = (
    "the a an is are was of to in on at by for with from and or not yes no what which where how many "
    "much there this that image picture photo video audio sound question answer think step first then "
    "so because therefore total left right top bottom above below near far inside outside between "
    "object objects point box click button icon menu window screen text number count find locate "
    "area length angle triangle square circle rectangle line side radius degrees sum difference "
    "product equals solve value final please you assistant user system helpful describe shown "
    "color shape size small large big tiny"
).split()
_COLOURS = "red green blue yellow orange purple black white gray brown pink cyan".split()
_SHAPES = "circle square triangle star cube sphere cylinder cone rectangle hexagon".split()


def default_corpus(num_lines: int = 3000, seed: int = 0) -> list[str]:
    """Synthetic training text for the tiny tokenizer: words, numbers, coordinates, boxes and task tags.

    Covers what tasks put in prompts and completions ("(12, 87)", "[10, 20, 30, 40]", "<answer>...",
    "\\boxed{42}", colour and shape words) so such strings become few tokens. Deterministic for a seed.
    """
    rng = random.Random(seed)

    def number() -> str:
        kind = rng.random()
        if kind < 0.6:
            return str(rng.randint(0, 100))
        if kind < 0.85:
            return str(rng.randint(0, 1000))
        return f"{rng.uniform(0, 100):.{rng.randint(1, 2)}f}"

    def words(n: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(n))

    def thing() -> str:
        return f"{rng.choice(_COLOURS)} {rng.choice(_SHAPES)}"

    def point() -> str:
        return f"({rng.randint(0, 999)}, {rng.randint(0, 999)})"

    def box() -> str:
        x1, y1 = rng.randint(0, 500), rng.randint(0, 500)
        return f"[{x1}, {y1}, {x1 + rng.randint(1, 499)}, {y1 + rng.randint(1, 499)}]"

    makers = (
        lambda: f"{words(rng.randint(3, 9)).capitalize()}?",
        lambda: f"How many {rng.choice(_SHAPES)}s are there? {number()}",
        lambda: f"The {thing()} is at {point()}.",
        lambda: f"The {thing()} is in the box {box()}.",
        lambda: f"<think>{words(rng.randint(4, 12))} {number()} + {number()} = {number()}</think>",
        lambda: f"<answer>{rng.choice([number(), point(), box(), thing(), rng.choice(['yes', 'no'])])}</answer>",
        lambda: f"<think>{words(rng.randint(3, 8))}</think> <answer>{number()}</answer>",
        lambda: f"The final answer is \\boxed{{{number()}}}.",
        lambda: f"{number()} {rng.choice('+-*/')} {number()} = {number()}",
        lambda: f"click {point()} on the {rng.choice(_COLOURS)} button",
        lambda: " ".join(number() for _ in range(rng.randint(2, 8))),
    )
    return [rng.choice(makers)() for _ in range(num_lines)]


def build_tiny_tokenizer(
    corpus: Iterable[str] | None = None,
    *,
    vocab_size: int = 512,
    extra_special_tokens: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a Qwen-style byte-level BPE tokenizer on `corpus` and wrap it for transformers.

    The byte-level alphabet (all 256 byte symbols) is always in the vocabulary, so any text encodes.
    Special tokens: Qwen's (`QWEN_SPECIAL_TOKENS`) then `extra_special_tokens`; `<think>`/`<answer>` tags
    are added as single, non-special tokens. eos = `<|im_end|>`, pad = `<|endoftext|>`, and the chat
    template is Qwen2.5-VL's (`QWEN2_5_VL_CHAT_TEMPLATE`). `corpus=None` trains on `default_corpus()`.
    """
    extra = [t for t in extra_special_tokens if t not in QWEN_SPECIAL_TOKENS]
    special_tokens = list(QWEN_SPECIAL_TOKENS) + extra
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    minimum = len(alphabet) + len(special_tokens)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the byte alphabet plus special tokens ({minimum})"
        )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=alphabet,
        special_tokens=special_tokens,
        show_progress=False,
    )
    lines = list(default_corpus() if corpus is None else corpus)
    tokenizer.train_from_iterator(lines, trainer=trainer)
    # normalized=False: the tag must match the raw text, before NFC and byte-level mapping.
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TASK_TAG_TOKENS])

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        additional_special_tokens=[t for t in special_tokens if t not in (EOS_TOKEN, PAD_TOKEN)],
        model_max_length=32768,
    )
    wrapped.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    return wrapped
