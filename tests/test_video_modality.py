"""Video modality: decord/PyAV decoding, qwen-vl-utils frame sampling, bad files, mixed image+video prompts,
fitting media to a token budget (also for images), and batching by concatenation."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from mmpost.modalities.image import ImageModality, build_tiny_qwen2_5_vl
from mmpost.modalities.video import MediaItem, VideoModality, fit_media_to_budget, load_video, write_video
from mmpost.registry import MODALITIES
from mmpost.types import DataError, MediaError, Modality, collate_prompts

MIXED = [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "Where does it go?"}]}]
VIDEO_ONLY = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Where does it go?"}]}]


def moving_square(frames: int = 16, size: int = 112) -> np.ndarray:
    clip = np.full((frames, size, size, 3), 230, dtype=np.uint8)
    for t in range(frames):
        clip[t, 40:60, 4 + 5 * t : 24 + 5 * t] = (220, 40, 40)
    return clip


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return write_video(moving_square(), tmp_path_factory.mktemp("clips") / "square.mp4", fps=8)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return AutoProcessor.from_pretrained(tiny_dir)


# -- decoding and sampling ------------------------------------------------------------------------
def test_fps_sampling_follows_qwen_vl_utils(clip_path):
    # 16 frames at 8 fps = 2 s; fps=2 asks for 4 frames (min_frames 4): linspace(0, 15, 4) = 0, 5, 10, 15
    video = load_video(clip_path, options={"fps": 2.0})
    assert video.backend == "decord" and video.frames.shape == (4, 3, 112, 112) and video.frames.dtype == torch.uint8
    assert (video.video_fps, video.total_frames, video.frame_indices) == (8.0, 16, [0, 5, 10, 15])
    assert video.sample_fps == pytest.approx(2.0)
    # nframes=6: linspace(0, 15, 6) = 0, 3, 6, 9, 12, 15; video_start/end pick a range in seconds
    assert load_video(clip_path, options={"nframes": 6}).frame_indices == [0, 3, 6, 9, 12, 15]
    ranged = load_video(clip_path, options={"nframes": 4, "video_start": 1.0, "video_end": 1.875})
    assert ranged.frame_indices == [8, 10, 13, 15] and ranged.total_frames == 8
    # lossy H.264 stays close to the drawn frames
    assert np.abs(video.frames[1].permute(1, 2, 0).numpy().astype(int) - moving_square()[5]).mean() < 2


@pytest.mark.parametrize("extension", [".avi", ".webm"])
def test_other_containers(tmp_path, extension):
    video = load_video(write_video(moving_square(8), tmp_path / f"c{extension}", fps=8), options={"nframes": 4})
    assert video.frames.shape == (4, 3, 112, 112) and video.frame_indices == [0, 2, 5, 7]


def test_pyav_fallback_when_decord_fails(clip_path, monkeypatch, caplog):
    import decord

    expected = load_video(clip_path, options={"nframes": 4})

    def refuse(*_, **__):
        raise RuntimeError("pretend decord cannot open this")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    with caplog.at_level(logging.WARNING):
        video = load_video(clip_path, options={"nframes": 4})
    assert video.backend == "pyav" and video.frame_indices == expected.frame_indices
    assert torch.equal(video.frames, expected.frames) and "decoded with PyAV" in caplog.text


def test_frame_folders_and_frame_lists(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(moving_square(5)):
        Image.fromarray(frame).save(folder / f"{t:03d}.png")
    video = load_video(folder, options={"nframes": 4})
    assert video.backend == "frames" and video.frame_indices == [0, 1, 3, 4]
    assert np.array_equal(video.frames[2].permute(1, 2, 0).numpy(), moving_square(5)[3])
    listed = load_video([Image.fromarray(f) for f in moving_square(3)])
    assert listed.frame_indices == [0, 1, 2, 2] and listed.actions == ["last frame repeated to an even count"]


def test_short_video_uses_all_frames_and_logs(tmp_path, caplog):
    path = write_video(moving_square(3), tmp_path / "short.mp4", fps=8)
    with caplog.at_level(logging.WARNING):
        video = load_video(path, options={"nframes": 8})
    assert video.frame_indices == [0, 1, 2, 2] and "fewer than the 8 requested; using all of them" in caplog.text
    assert "fewer than" in video.actions[0]


def test_bad_videos_raise_media_errors_naming_the_file(tmp_path, clip_path):
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError, match=r"junk\.mp4: cannot decode .*decord.*pyav"):
        load_video(tmp_path / "junk.mp4")
    data = clip_path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.mp4: cannot decode"):
        load_video(tmp_path / "cut.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4: empty file"):
        load_video(tmp_path / "empty.mp4")
    (tmp_path / "no_frames").mkdir()
    with pytest.raises(MediaError, match=r"no_frames: the frame folder holds no"):
        load_video(tmp_path / "no_frames")
    with pytest.raises(MediaError, match=r"missing\.mp4: file not found"):
        load_video("missing.mp4", root=tmp_path)
    with pytest.raises(MediaError, match=r"sample 'v'.*junk\.mp4"):
        VideoModality().decode({"id": "v", "videos": ["junk.mp4"]}, root=tmp_path)


# -- encoding ---------------------------------------------------------------------------------------
def test_mixed_image_and_video_prompt(processor, clip_path):
    assert MODALITIES.get("video") is VideoModality and isinstance(VideoModality(), Modality)
    sample = {"id": "m", "images": [Image.fromarray(moving_square()[0])], "videos": [{"video": str(clip_path), "nframes": 8}]}
    encoding = VideoModality().encode_prompt(processor, MIXED, sample)
    media = encoding.media
    # image 112x112 -> 8x8 patches (16 tokens); video 8 frames -> 4 temporal x 8 x 8 patches (64 tokens)
    assert media["image_grid_thw"].tolist() == [[1, 8, 8]] and media["pixel_values"].shape == (64, 1176)
    assert media["video_grid_thw"].tolist() == [[4, 8, 8]] and media["pixel_values_videos"].shape == (256, 1176)
    # second_per_grid_ts = temporal patch 2 / sampled fps (8 of 16 frames at 8 fps = 4 fps) = 0.5 s
    assert media["second_per_grid_ts"].tolist() == [0.5]
    types = encoding.token_fields["mm_token_type_ids"]
    assert int((types == 1).sum()) == 16 and int((types == 2).sum()) == 64
    assert sample["decoded"]["budget_actions"] == []
    with pytest.raises(DataError, match="1 video placeholder.*0 video"):
        VideoModality().encode_prompt(processor, VIDEO_ONLY, {"id": "x", "videos": []})
    with pytest.raises(MediaError, match="no `videos` field"):
        VideoModality().encode_prompt(processor, VIDEO_ONLY, {"id": "y"})


def test_budget_worked_example():
    # text 20 tokens + a 112x112 image (16) + an 8-frame 112x112 video (4 x 16 = 64) = 100 > 60
    items = [MediaItem("image", 0, 112, 112, 1, 56 * 56, 112 * 112), MediaItem("video", 0, 112, 112, 8, 56 * 56, 112 * 112)]
    plans, actions = fit_media_to_budget(items, text_tokens=20, max_prompt_tokens=100, factor=28)
    assert actions == [] and [(p.width, p.height, p.nframes) for p in plans] == [(112, 112, 1), (112, 112, 8)]
    # at the minimum size (56x56 = 4 tokens a frame) the media still take 4 + 16 = 20 -> 40 > 39: drop frames to 6
    plans, actions = fit_media_to_budget(items, text_tokens=20, max_prompt_tokens=39, factor=28)
    assert [(p.width, p.height, p.nframes) for p in plans] == [(56, 56, 1), (56, 56, 6)]
    assert actions[-1] == {"action": "fit", "tokens_before": 100, "tokens_after": 36, "max_prompt_tokens": 39}
    assert {"media": "video 0", "action": "drop_frames", "from": 8, "to": 6} in actions
    # shrinking alone is enough for 60: every item keeps one common share of its pixels
    plans, _ = fit_media_to_budget(items, text_tokens=20, max_prompt_tokens=60, factor=28)
    assert [p.nframes for p in plans] == [1, 8] and 20 + sum((p.width // 28) * (p.height // 28) * (p.nframes + 1) // 2 for p in plans) <= 60
    with pytest.raises(MediaError, match=r"sample 's': cannot fit max_prompt_tokens=25: the text takes 20"):
        fit_media_to_budget(items, text_tokens=20, max_prompt_tokens=25, factor=28, name="sample 's'")


def test_encode_fits_the_token_budget_and_records_it(processor, clip_path, caplog):
    sample = {"id": "b", "images": [Image.fromarray(moving_square()[0])], "videos": [{"video": str(clip_path), "nframes": 8}]}
    with caplog.at_level(logging.WARNING):
        encoding = VideoModality(max_prompt_tokens=60).encode_prompt(processor, MIXED, sample)
    assert encoding.input_ids.numel() <= 60 and "over max_prompt_tokens=60" in caplog.text
    actions = sample["decoded"]["budget_actions"]
    assert actions[-1]["tokens_after"] == encoding.input_ids.numel()
    grid = encoding.media["video_grid_thw"][0].tolist()
    assert grid[0] * 2 == next(a["to"] for a in actions if a["action"] == "drop_frames")
    # images alone, through the image modality and the same function
    image_sample = {"id": "i", "images": [Image.fromarray(moving_square()[0])] * 2}
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}]}]
    full = ImageModality().encode_prompt(processor, messages, dict(image_sample)).input_ids.numel()
    fitted = ImageModality(max_prompt_tokens=full - 20).encode_prompt(processor, messages, image_sample)
    assert fitted.input_ids.numel() <= full - 20 and fitted.media["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4]]
    assert image_sample["decoded"]["model_image_sizes"] == [(56, 56), (56, 56)]


def test_batch_by_concatenation_equals_one_prompt_at_a_time(processor, tiny_dir, tmp_path):
    """Video media concatenate along dim 0 (second_per_grid_ts too) and prompts left-pad: each row's logits
    match its own forward pass."""
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    modality = VideoModality(nframes=4)
    paths = [write_video(moving_square(8), tmp_path / "a.mp4", fps=8),
             write_video(moving_square(12, size=84)[::-1].copy(), tmp_path / "b.mp4", fps=4)]
    encodings = [modality.encode_prompt(processor, VIDEO_ONLY, {"id": str(i), "videos": [str(p)]}) for i, p in enumerate(paths)]
    assert encodings[0].input_ids.numel() != encodings[1].input_ids.numel()
    batch = collate_prompts(encodings, processor.tokenizer.pad_token_id)
    assert batch["video_grid_thw"].shape == (2, 3) and batch["second_per_grid_ts"].shape == (2,)
    with torch.no_grad():
        together = model(**batch).logits
        for row, e in enumerate(encodings):
            alone = model(input_ids=e.input_ids[None], mm_token_type_ids=e.token_fields["mm_token_type_ids"][None], **e.media).logits[0]
            torch.testing.assert_close(together[row, -e.input_ids.numel():], alone, rtol=1e-4, atol=1e-4)
