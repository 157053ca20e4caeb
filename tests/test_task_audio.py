"""The synthetic audio_mcq task (answers checked against the waveform) and the R1-AQA / AudioMCQ rewards."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from mmpost.registry import REWARDS, TASKS
from mmpost.tasks.audio_mcq import AudioMCQTask, r1aqa_prompt_text
from mmpost.types import Task


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return TASKS.get("audio_mcq")(cache_dir=tmp_path_factory.mktemp("audio_mcq"))


@pytest.fixture(scope="module")
def train(task):
    return task.load("train", size=60)


def bursts(wave: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """(start, end) sample ranges where the 5 ms envelope is above a tenth of the peak."""
    window = rate // 200
    envelope = np.convolve(np.abs(wave), np.ones(window) / window, mode="same")
    loud = envelope > 0.1 * envelope.max()
    edges = np.flatnonzero(np.diff(loud.astype(int)))
    starts = list(edges[::2] + 1) if not loud[0] else [0] + list(edges[1::2] + 1)
    ends = list(edges[1::2] + 1) if not loud[0] else list(edges[::2] + 1)
    return list(zip(starts, ends))


def peak_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()])


def test_every_answer_matches_the_wav_file(train):
    for sample in train:
        wave, rate = soundfile.read(sample["audios"][0], dtype="float32")
        assert rate == 16_000 and wave.ndim == 1
        segments = bursts(wave, rate)
        kind = sample["kind"]
        if kind == "count":
            assert ["one", "two", "three", "four"][len(segments) - 1] == sample["answer"], sample["id"]
            continue
        assert len(segments) == 2, sample["id"]
        if kind == "pitch":
            first, second = (peak_frequency(wave[s:e], rate) for s, e in segments)
            assert ("first" if first > second else "second") == sample["answer"], sample["id"]
            assert max(first, second) / min(first, second) > 1.4
        else:
            first, second = (e - s for s, e in segments)
            assert ("first" if first > second else "second") == sample["answer"], sample["id"]


def test_deterministic_cached_and_split_disjoint(task, train, tmp_path):
    again = AudioMCQTask(cache_dir=tmp_path).load("train", size=60)
    assert [s["answer"] for s in again] == [s["answer"] for s in train]
    assert [s["audios"][0].rsplit("/", 1)[1] for s in again] == [s["audios"][0].rsplit("/", 1)[1] for s in train]
    assert [s["kind"] for s in train[:4]] == ["pitch", "count", "duration", "pitch"]
    heldout = task.load("heldout") + task.load("test", seed=3, size=24)
    assert len(task.load("heldout")) == 48
    names = lambda rows: {s["audios"][0] for s in rows}  # noqa: E731 - files are named by the clip's content
    assert not names(task.load("train")) & names(heldout)
    with pytest.raises(ValueError, match="unknown split"):
        task.load("dev")
    with pytest.raises(ValueError, match="kinds must be"):
        AudioMCQTask(kinds=["loudness"])


def test_prompt_is_r1aqas_template_and_target_is_the_option_text(task, train):
    sample = next(s for s in train if s["kind"] == "count")
    expected = ("How many beeps are there? Please choose the answer from the following options: "
                "['one', 'two', 'three', 'four']. Output the final answer in <answer> </answer>.")
    assert task.prompt(sample) == [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": expected}]}]
    assert task.target(sample) == f"<answer>{sample['answer']}</answer>" == sample["solution"]
    assert r1aqa_prompt_text("What is in the video?", ["a", "b"], video_to_audio=True).startswith("What is in the audio?")
    assert isinstance(task, Task) and task.modality == "audio" and task.accuracy_reward == "r1aqa_accuracy"
    assert task.default_rewards == [{"name": "r1aqa_accuracy", "weight": 1.0}, {"name": "r1aqa_format", "weight": 1.0}]
    system = AudioMCQTask(system_prompt="Be brief.", cache_dir=task.cache_dir).prompt(sample)
    assert system[0] == {"role": "system", "content": "Be brief."}


def test_targets_score_full_reward(task, train):
    targets = [task.target(s) for s in train]
    for name in ("r1aqa_accuracy", "r1aqa_format", "audiomcq_accuracy"):
        assert REWARDS.get(name)(targets, train) == [1.0] * len(train)


def test_r1aqa_accuracy_worked_examples():
    accuracy = REWARDS.get("r1aqa_accuracy")
    sample = {"id": "x", "answer": "first"}
    completions = [
        "<answer>first</answer>",          # exact
        "<answer> first </answer>",        # stripped: still exact
        "<answer>First</answer>",          # case-sensitive in R1-AQA
        "first",                           # no tag: the whole stripped output is compared
        "<answer>first</answer><answer>second</answer>",  # re.search: the first tag counts
        "<answer>second</answer>",
        "<answer>fir\nst</answer>",        # no DOTALL: the tag is not matched, whole text compared
    ]
    assert accuracy(completions, [sample] * len(completions)) == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    # math_verify sees the whole text: LaTeX inside the tags parses, so 0.5 equals 1/2 although the strings differ
    latex = {"id": "l", "solution": "<answer>$\\frac{1}{2}$</answer>"}
    assert accuracy(["<answer>$0.5$</answer>", "<answer>$0.4$</answer>"], [latex] * 2) == [1.0, 0.0]
    # R1-AQA quirk: a bare number inside tags parses to nothing, so only the exact string match is left
    numbers = {"id": "n", "answer": "0.5"}
    assert accuracy(["<answer>0.5</answer>", "<answer>0.50</answer>"], [numbers] * 2) == [1.0, 0.0]


def test_r1aqa_format_is_the_literal_fullmatch():
    fmt = REWARDS.get("r1aqa_format")
    completions = ["<answer>a</answer>", "<answer>a\nb</answer>", " <answer>a</answer>", "x <answer>a</answer>",
                   "<answer>a</answer><answer>b</answer>", "<answer>a"]
    assert fmt(completions, [{}] * len(completions)) == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_audiomcq_accuracy_is_case_insensitive_and_needs_a_tag():
    accuracy = REWARDS.get("audiomcq_accuracy")
    sample = {"id": "x", "answer": "First"}
    assert accuracy(["<answer>first</answer>", "first", "<answer>second</answer>"], [sample] * 3) == [1.0, 0.0, 0.0]
