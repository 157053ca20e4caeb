"""Robot modality: binning by hand, clipping counted, round trip within half a bin, token maps, tiny VLA."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmpost.modalities.robot import (
    ActionStats,
    ActionTokenizer,
    RobotModality,
    bin_centres,
    discretize,
    format_proprio,
    parse_action_bins,
    restrict_logits,
    suppressed_token_ids_for,
)
from mmpost.registry import MODALITIES, MODEL_ZOO
from mmpost.types import DataError

STATS = ActionStats(low=(-1.0,), high=(1.0,))


def test_binning_by_hand():
    # 4 bins of width 0.5 over [-1, 1]: [-1,-.5) [-.5,0) [0,.5) [.5,1]
    indices, clipped = discretize([[-1.0], [-0.6], [0.0], [0.99], [1.0], [1.5], [-3.0]], STATS, 4)
    assert indices.ravel().tolist() == [0, 0, 2, 3, 3, 3, 0]
    assert clipped.ravel().tolist() == [False, False, False, False, False, True, True]
    assert bin_centres([[0], [1], [2], [3]], STATS, 4).ravel().tolist() == [-0.75, -0.25, 0.25, 0.75]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        bin_centres([[4]], STATS, 4)


def test_round_trip_within_half_a_bin_per_dimension():
    stats = ActionStats(low=(-0.1, 0.0, -2.0), high=(0.1, 1.0, 2.0))
    actions = np.random.default_rng(0).uniform(stats.low, stats.high, size=(500, 3))
    tokenizer = ActionTokenizer.reserved(stats, vocab_size=1000, n_bins=256)
    back = tokenizer.decode(tokenizer.encode(actions))
    half_bin = (np.array(stats.high) - np.array(stats.low)) / 256 / 2
    assert back.shape == actions.shape and (np.abs(back - actions) <= half_bin + 1e-12).all()
    assert tokenizer.clipped_values == 0


def test_out_of_range_actions_are_clipped_and_counted():
    tokenizer = ActionTokenizer.reserved(STATS, vocab_size=100, n_bins=4)
    ids = tokenizer.encode([[2.0], [-5.0], [0.1]])
    assert tokenizer.clipped_values == 2
    assert tokenizer.decode(ids).ravel().tolist() == [0.75, -0.75, 0.25]


def test_reserved_ids_are_the_end_of_the_vocabulary():
    tokenizer = ActionTokenizer.reserved(STATS, vocab_size=1000, n_bins=256)
    assert tokenizer.allowed_token_ids() == list(range(744, 1000))
    assert tokenizer.encode([[-1.0], [1.0]]) == [744, 999]
    with pytest.raises(ValueError, match="not action tokens"):
        tokenizer.decode([5])
    two_d = ActionTokenizer.reserved(ActionStats((-1, -1), (1, 1)), vocab_size=100, n_bins=4)
    with pytest.raises(ValueError, match="whole steps"):
        two_d.decode(two_d.encode([[0.0, 0.0]])[:1])


def test_stats_from_demonstrations():
    actions = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    stats = ActionStats.from_actions(actions, quantiles=None)
    assert stats.low == (0.0, 5.0 - 1e-3) and stats.high == (4.0, 5.0 + 1e-3)  # a constant dimension still has bins
    assert ActionStats.from_actions(actions, quantiles=(0.25, 0.75)).low[0] == pytest.approx(0.75)
    assert ActionStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(ValueError, match="high must exceed low"):
        ActionStats(low=(1.0,), high=(1.0,))


def test_restricted_vocabulary_helpers():
    assert suppressed_token_ids_for(6, allowed=[4, 5], always_allowed=[0]) == [1, 2, 3]
    logits = torch.zeros(2, 5)
    masked = restrict_logits(logits, [1, 3])
    assert torch.isinf(masked[:, [0, 2, 4]]).all() and (masked[:, [1, 3]] == 0).all()
    assert parse_action_bins("<act_3> <act_250><act_0>junk") == [3, 250, 0]


def test_modality_decodes_proprio_and_actions():
    modality = MODALITIES.get("robot")()
    sample = {"id": "r1", "images": [Image.new("RGB", (56, 56))], "proprio": [0.1, 0.2], "actions": [[0.1, 0.0], [0.0, 0.1]]}
    decoded = modality.decode(sample)["decoded"]
    assert decoded["proprio"].tolist() == [0.1, 0.2] and decoded["actions"].shape == (2, 2)
    with pytest.raises(DataError, match="'r1'.*proprio"):
        modality.decode({**sample, "proprio": None})
    with pytest.raises(DataError, match=r"'r1'.*\[K, D\]"):
        modality.decode({**sample, "actions": [0.1, 0.2]})
    with pytest.raises(DataError, match="image"):
        modality.decode({**sample, "images": []})
    assert format_proprio([0.123, -0.4], names=["x", "y"]) == "State: x 0.12, y -0.40."


@pytest.fixture(scope="module")
def tiny_vla(tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = MODEL_ZOO.get("tiny-vla-qwen2.5-vl")(tmp_path_factory.mktemp("zoo") / "tiny-vla")
    return AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path)


def test_tiny_vla_has_action_tokens_and_samples_only_them_when_restricted(tiny_vla):
    processor, model = tiny_vla
    tokenizer = processor.tokenizer
    actions = ActionTokenizer.added(ActionStats((-0.1, -0.1), (0.1, 0.1)), tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == 516 + 256
    text = actions.to_text([[0.1, -0.1]])
    assert text == "<act_255><act_0>"
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == actions.encode([[0.1, -0.1]])
    assert tokenizer.decode(actions.encode([[0.0, 0.05]]), skip_special_tokens=True) == actions.to_text([[0.0, 0.05]])
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Act."}]}]
    sample = {"id": "v", "images": [Image.new("RGB", (56, 56), "red")], "proprio": [0.5, 0.5]}
    encoding = RobotModality().encode_prompt(processor, messages, sample)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    suppressed = suppressed_token_ids_for(len(tokenizer), actions.allowed_token_ids(), always_allowed=[eos])
    torch.manual_seed(0)
    out = model.generate(input_ids=encoding.input_ids[None], attention_mask=torch.ones_like(encoding.input_ids[None]),
                         mm_token_type_ids=encoding.token_fields["mm_token_type_ids"][None], **encoding.media,
                         do_sample=True, max_new_tokens=8, suppress_tokens=suppressed, eos_token_id=eos, pad_token_id=eos)
    new = out[0, encoding.input_ids.numel():].tolist()
    assert new and all(t in set(actions.allowed_token_ids()) | {eos} for t in new)
    with pytest.raises(ValueError, match="lacks"):
        ActionTokenizer.added(STATS, tokenizer, n_bins=300)
