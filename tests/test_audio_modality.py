"""Audio modality: decoding (formats, bad files, rates, channels, lengths), Qwen2-Audio encoding and batching."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile
import torch
from transformers import AutoProcessor

from mmpost.config import ModelConfig
from mmpost.model import load_model
from mmpost.modalities.audio import AudioModality, build_tiny_qwen2_audio, load_audio, qwen2_audio_embedding_count, resample
from mmpost.registry import MODALITIES, MODEL_ZOO
from mmpost.types import DataError, MediaError, Modality, collate_prompts

RATE = 16_000
MESSAGES = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Which is higher?"}]}]


def sine(frequency: float, seconds: float, rate: int = RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def dominant_frequency(wave: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return AutoProcessor.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return load_model(ModelConfig(path=str(tiny_dir))).eval()


# -- loading --------------------------------------------------------------------------------------
@pytest.mark.parametrize("extension, subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")])
def test_formats_decode_to_16k_mono(tmp_path, extension, subtype):
    path = tmp_path / f"tone{extension}"
    soundfile.write(path, sine(440, 1.0), RATE, subtype=subtype)
    audio = load_audio(path)
    assert audio.sampling_rate == RATE and audio.waveform.dtype == np.float32
    assert abs(audio.seconds - 1.0) < 0.06  # mp3 adds encoder delay/padding
    assert abs(dominant_frequency(audio.waveform) - 440) <= 2
    if extension in (".wav", ".flac"):  # lossless: equal up to 16-bit quantisation
        assert np.abs(audio.waveform - sine(440, 1.0)).max() < 1e-4


def test_bad_files_raise_media_errors_naming_them(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.wav: empty file"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF-but-not-really" * 50)
    with pytest.raises(MediaError, match=r"junk\.wav: not a readable audio file .*soundfile.*pyav"):
        load_audio(tmp_path / "junk.wav")
    with pytest.raises(MediaError, match=r"nowhere\.wav: file not found"):
        load_audio("nowhere.wav", root=tmp_path)
    with pytest.raises(MediaError, match="no samples"):
        load_audio((np.zeros(0, np.float32), RATE))
    with pytest.raises(MediaError, match="NaN or infinite"):
        load_audio((np.array([0.0, np.nan], np.float32), RATE))
    with pytest.raises(MediaError, match="no sampling rate"):
        load_audio(np.zeros(10, np.float32))


def test_other_rates_are_resampled_and_logged(tmp_path, caplog):
    soundfile.write(tmp_path / "cd.wav", sine(440, 1.0, 44_100), 44_100)
    with caplog.at_level(logging.INFO):
        audio = load_audio(tmp_path / "cd.wav")
    assert audio.original_sampling_rate == 44_100 and audio.waveform.shape == (16_000,)
    assert abs(dominant_frequency(audio.waveform) - 440) <= 1
    assert audio.actions == ["resampled 44100 Hz -> 16000 Hz"] and "resampled 44100 Hz -> 16000 Hz" in caplog.text
    # 8 kHz -> 16 kHz doubles the length: 800 samples -> 1600
    assert resample(np.ones(800, np.float32), 8000, 16000).shape == (1600,)


def test_stereo_keeps_the_first_channel(tmp_path, caplog):
    left, right = sine(440, 0.5), np.random.RandomState(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], 1), RATE, subtype="FLOAT")
    with caplog.at_level(logging.INFO):
        audio = load_audio(tmp_path / "stereo.wav")
    assert audio.channels == 2 and np.array_equal(audio.waveform, left)
    assert "first of 2 channels" in caplog.text


def test_too_long_is_truncated_to_the_window_and_too_short_padded(caplog):
    with caplog.at_level(logging.WARNING):
        long = load_audio((sine(300, 31.0), RATE))
        short = load_audio((sine(300, 0.02), RATE))
    assert long.waveform.shape == (30 * RATE,) and long.original_seconds == pytest.approx(31.0)
    assert "feature window; truncated" in caplog.text
    assert short.waveform.shape == (1600,) and np.all(short.waveform[320:] == 0)
    assert "padded with silence" in caplog.text


def test_pyav_reads_what_soundfile_cannot(tmp_path, monkeypatch):
    soundfile.write(tmp_path / "a.wav", sine(440, 0.5), RATE)
    expected = load_audio(tmp_path / "a.wav").waveform

    def refuse(*_, **__):
        raise RuntimeError("pretend libsndfile cannot read this")

    monkeypatch.setattr(soundfile, "read", refuse)
    assert np.abs(load_audio(tmp_path / "a.wav").waveform - expected).max() < 1e-6


# -- modality -------------------------------------------------------------------------------------
def test_registered_and_decode_records_what_was_done(tmp_path):
    assert MODALITIES.get("audio") is AudioModality and isinstance(AudioModality(), Modality)
    soundfile.write(tmp_path / "x.wav", sine(440, 1.0, 22_050), 22_050)
    sample = {"id": "s", "audios": "x.wav"}
    decoded = AudioModality().decode(sample, root=tmp_path)
    assert "decoded" not in sample
    info = decoded["decoded"]["audio_info"][0]
    assert info["original_sampling_rate"] == 22_050 and info["actions"] == ["resampled 22050 Hz -> 16000 Hz"]
    with pytest.raises(MediaError, match=r"sample 'bad'.*gone\.wav"):
        AudioModality().decode({"id": "bad", "audios": ["gone.wav"]}, root=tmp_path)


def test_embedding_count_worked_examples():
    # 1 s: 100 frames -> conv stride 2: 50 -> pool stride 2: (50 - 2) // 2 + 1 = 25
    assert qwen2_audio_embedding_count(16_000) == 25
    assert qwen2_audio_embedding_count(30 * 16_000) == 750
    assert qwen2_audio_embedding_count(1_600) == 2  # the 0.1 s minimum


def test_encode_prompt_expands_audio_tokens_and_returns_features(processor):
    modality = AudioModality()
    sample = {"id": "a", "audios": [(sine(440, 1.0), RATE)]}
    encoding = modality.encode_prompt(processor, MESSAGES, sample)
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    assert int((encoding.input_ids == audio_id).sum()) == 25
    assert "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhich is higher?" in encoding.text
    assert encoding.media["input_features"].shape == (1, 128, 3000)
    assert encoding.media["feature_attention_mask"].shape == (1, 3000)
    assert int(encoding.media["feature_attention_mask"].sum()) == 100
    assert encoding.token_fields == {}
    text_only = modality.encode_prompt(processor, [{"role": "user", "content": "hi"}], {"id": "t"})
    assert text_only.media == {}
    with pytest.raises(DataError, match="1 audio placeholder.*2 audio clip"):
        modality.encode_prompt(processor, MESSAGES, {"id": "two", "audios": [(sine(1, 1), RATE)] * 2})
    with pytest.raises(MediaError, match="no `audios` field"):
        modality.encode_prompt(processor, MESSAGES, {"id": "none"})


def test_silence_gives_finite_features_and_logits(processor, model):
    encoding = AudioModality().encode_prompt(processor, MESSAGES, {"id": "quiet", "audios": [(np.zeros(RATE, np.float32), RATE)]})
    assert torch.isfinite(encoding.media["input_features"]).all()
    with torch.no_grad():
        logits = model(input_ids=encoding.input_ids[None], **encoding.media).logits
    assert torch.isfinite(logits).all()


def test_batch_by_concatenation_equals_one_prompt_at_a_time(processor, model):
    """Media concatenate along dim 0 and prompts left-pad: each row's logits match its own forward pass."""
    modality = AudioModality()
    samples = [{"id": "1", "audios": [(sine(440, 0.6), RATE)]}, {"id": "2", "audios": [(sine(880, 1.7), RATE)]}]
    encodings = [modality.encode_prompt(processor, MESSAGES, s) for s in samples]
    batch = collate_prompts(encodings, processor.tokenizer.pad_token_id)
    assert batch["input_features"].shape == (2, 128, 3000)
    with torch.no_grad():
        together = model(**batch).logits
        for row, encoding in enumerate(encodings):
            alone = model(input_ids=encoding.input_ids[None], **encoding.media).logits[0]
            n = encoding.input_ids.numel()
            torch.testing.assert_close(together[row, -n:], alone, rtol=1e-4, atol=1e-4)


def test_zoo_entry_builds_and_loads_through_the_engine(tiny_dir, tmp_path):
    import json

    from safetensors.torch import load_file

    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_audio" and config["architectures"] == ["Qwen2AudioForConditionalGeneration"]
    assert config["audio_config"]["max_source_positions"] == 1500 and config["audio_config"]["num_mel_bins"] == 128
    assert MODEL_ZOO.get("tiny-qwen2-audio") is build_tiny_qwen2_audio
    again = build_tiny_qwen2_audio(tmp_path / "again")
    weights, same = load_file(tiny_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert all(torch.equal(weights[k], same[k]) for k in weights)
    assert sum(t.numel() for t in weights.values()) < 300_000
