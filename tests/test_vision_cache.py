"""Vision features computed once per step for frozen towers; trainable towers and text models unaffected."""
import copy

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from mmpost.logprobs import completion_logprobs
from mmpost.vision_cache import content_key, find_media_towers, reuse_vision_features
from test_prefix_sharing import gradients_of, image_batch


def scored(model, policy, batch, rows=None, layout="padded"):
    rows = torch.arange(len(batch)) if rows is None else rows
    with torch.no_grad():
        logprobs, _ = completion_logprobs(model, batch, rows, pad_id=policy.pad_token_id,
                                          suppressed_token_ids=policy.suppressed_token_ids, layout=layout)
    return logprobs


def test_content_keys_follow_content_not_tensor_identity():
    pixels = torch.arange(12.0).view(3, 4)
    assert content_key(pixels, (1, 2, 2)) == content_key(pixels.clone(), (1, 2, 2))
    assert content_key(torch.cat([pixels, pixels])[3:], (1, 2, 2)) == content_key(pixels, (1, 2, 2))
    changed = pixels.clone()
    changed[2, 3] += 1e-3
    assert content_key(changed, (1, 2, 2)) != content_key(pixels, (1, 2, 2))
    assert content_key(pixels, (1, 2, 2)) != content_key(pixels, (1, 1, 4))


def test_items_that_differ_where_the_key_does_not_look_are_told_apart(tiny_vl_dir):
    model, _, _ = image_batch(tiny_vl_dir, (1,), 1)
    tower = model.model.visual.requires_grad_(False)
    grid = torch.tensor([[1, 4, 4]])  # a 56 x 56 image: 16 patches x 1176 values, more than the key samples
    pixels = torch.randn(16, 1176)
    nudged = pixels.clone()
    nudged.view(-1)[1] += 1.0  # the key samples every 5th value; this one is not among them
    assert content_key(nudged, (1, 4, 4)) == content_key(pixels, (1, 4, 4))
    with torch.no_grad(), reuse_vision_features([model]) as counter:
        first = tower(pixels, grid_thw=grid).pooler_output
        second = tower(nudged, grid_thw=grid).pooler_output
        again = tower(torch.cat([pixels, nudged, pixels]), grid_thw=grid.repeat(3, 1)).pooler_output
    assert counter.calls == 2 and counter.items_encoded == 2 and counter.items_reused == 3
    assert not torch.allclose(first, second)
    assert torch.equal(again, torch.cat([first, second, first]))


def test_frozen_tower_encodes_each_image_once_per_step(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (3, 1, 2), 5)
    model.model.visual.requires_grad_(False)
    expected = scored(model, policy, batch)
    with reuse_vision_features([model], enabled=True) as counter:
        # Old-policy, shared-prefix and packed passes: 3 distinct images behind 6 rows, 3 passes.
        passes = [scored(model, policy, batch), scored(model, policy, batch, layout="shared_prefix"),
                  scored(model, policy, batch, rows=torch.tensor([5, 1]), layout="packed")]
    assert counter.calls == 1 and counter.items_encoded == 3
    assert counter.items_reused == 6 + 3 + 2 - 3
    assert torch.equal(passes[0], expected)
    assert torch.allclose(passes[1], expected, atol=1e-5)
    assert torch.allclose(passes[2], expected[[5, 1]], atol=1e-5)
    assert counter.metrics()["perf/vision_encodes"] == 1.0
    # Outside the block the tower is itself again.
    assert "forward" not in model.model.visual.__dict__
    with torch.no_grad():
        _ = scored(model, policy, batch)
    assert counter.calls == 1


def test_reference_copy_with_identical_frozen_tower_shares_features(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (2, 1), 4)
    model.model.visual.requires_grad_(False)
    reference = copy.deepcopy(model).requires_grad_(False)
    with reuse_vision_features([model, reference]) as counter:
        policy_logprobs = scored(model, policy, batch)
        reference_logprobs = scored(reference, policy, batch)
    assert counter.calls == 1
    assert torch.equal(policy_logprobs, reference_logprobs)
    # A reference whose tower differs gets its own features.
    with torch.no_grad():
        next(reference.model.visual.parameters()).add_(0.1)
    with reuse_vision_features([model, reference]) as counter:
        scored(model, policy, batch)
        different = scored(reference, policy, batch)
    assert counter.calls == 2
    assert not torch.allclose(different, policy_logprobs)


def test_trainable_tower_is_not_cached_and_gets_gradients(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (2, 1), 4, seed=1)
    rows = torch.arange(len(batch))
    weights = torch.randn(batch.completion_ids.shape)
    _, plain = gradients_of(model, batch, rows, policy, weights, "padded")
    with reuse_vision_features([model], enabled=True) as counter:
        scored(model, policy, batch)
        _, inside = gradients_of(model, batch, rows, policy, weights, "padded")
    assert counter.calls == 2 and counter.items_reused == 0
    vision = [n for n in plain if n.startswith("model.visual.")]
    assert vision and all(float(inside[n].abs().sum()) > 0 for n in vision)
    for name in plain:
        assert torch.equal(inside[name], plain[name]), name


def test_disabled_cache_only_counts_calls(tiny_vl_dir):
    model, policy, batch = image_batch(tiny_vl_dir, (1, 1), 3)
    model.model.visual.requires_grad_(False)
    with reuse_vision_features([model], enabled=False) as counter:
        scored(model, policy, batch)
        scored(model, policy, batch)
    assert counter.calls == 2 and counter.items_reused == 0


def test_batched_audio_tower_encodes_each_clip_once():
    from transformers import Qwen2AudioEncoderConfig
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder

    config = Qwen2AudioEncoderConfig(num_mel_bins=8, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=16,
                                     d_model=8, max_source_positions=10)
    holder = torch.nn.Module()
    holder.audio_tower = Qwen2AudioEncoder(config).eval().requires_grad_(False)
    clips = torch.randn(2, 8, 20)
    with torch.no_grad():
        expected = holder.audio_tower(clips).last_hidden_state
        with reuse_vision_features([holder]) as counter:
            repeated = holder.audio_tower(torch.cat([clips, clips[:1]])).last_hidden_state
            second_only = holder.audio_tower(clips[1:].clone()).last_hidden_state
    assert counter.calls == 1 and counter.items_encoded == 2 and counter.items_reused == 2
    assert torch.allclose(repeated, torch.cat([expected, expected[:1]]), atol=1e-6)
    assert torch.equal(second_only[0], repeated[1])


def test_model_without_a_media_tower_is_untouched():
    config = Qwen2Config(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    model = Qwen2ForCausalLM(config).eval()
    ids = torch.randint(50, (2, 6))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        assert find_media_towers(model) == []
        with reuse_vision_features([model, None]) as counter:
            inside = model(input_ids=ids).logits
    assert counter.calls == 0
    assert torch.equal(inside, expected)


def test_the_same_tensor_again_is_served_without_hashing_and_a_write_is_noticed(tiny_vl_dir, monkeypatch):
    """A pass that hands the tower the very tensor of the previous call (the shared-prefix passes reuse one collation
    per step) gets the same features without hashing or comparing pixels; an in-place write (a new `_version`) or
    a different tensor goes back to the content key."""
    import mmpost.vision_cache as vision_cache

    model, _, _ = image_batch(tiny_vl_dir, (1,), 1)
    tower = model.model.visual.requires_grad_(False)
    grid = torch.tensor([[1, 4, 4], [1, 4, 4]])
    pixels = torch.randn(32, 1176)
    hashed = []
    original_key = vision_cache.content_key
    monkeypatch.setattr(vision_cache, "content_key", lambda *a, **k: hashed.append(1) or original_key(*a, **k))
    with torch.no_grad(), reuse_vision_features([model]) as counter:
        first = tower(pixels, grid_thw=grid).pooler_output
        assert len(hashed) == 2
        again = tower(pixels, grid_thw=grid).pooler_output
        assert len(hashed) == 2 and torch.equal(again, first) and again is not first
        pixels[0, 0] += 1.0  # in place: the version changes, the identity no longer holds
        changed = tower(pixels, grid_thw=grid).pooler_output
        assert len(hashed) == 4 and counter.calls == 2 and not torch.equal(changed, first)
        copy_of = tower(pixels.clone(), grid_thw=grid).pooler_output  # equal content, other object: by content
        assert len(hashed) == 6 and counter.calls == 2 and torch.equal(copy_of, changed)


def test_reference_and_update_passes_share_one_collation(tiny_vl_dir):
    """The shared-prefix passes of one batch collate its prompts once; the second pass encodes and hashes nothing."""
    model, policy, batch = image_batch(tiny_vl_dir, (3, 1, 2), 5)
    model.model.visual.requires_grad_(False)
    with reuse_vision_features([model]) as counter:
        first = scored(model, policy, batch, layout="shared_prefix")
        reused_after_first = counter.items_reused
        second = scored(model, policy, batch, layout="shared_prefix")
    assert counter.calls == 1 and torch.equal(first, second)
    assert counter.items_reused - reused_after_first == 3  # all three images, from the identity path
    assert len(batch.collated_prompts) == 1
    # The step passes phase results on in new batches (`dataclasses.replace`): they keep the one collation.
    from dataclasses import replace

    assert replace(batch, advantages=torch.zeros(len(batch))).collated_prompts is batch.collated_prompts
