"""Driving modality: DriveLM camera order and reader on the real fixture, missing cameras, OpenREAD rewards by hand."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmpost.judge import Judge
from mmpost.modalities.driving import (
    JUDGE_REWARD_STATS,
    NUSCENES_CAMERAS,
    DrivingModality,
    camera_content,
    critic_score,
    format_ego_state,
    parse_waypoints,
    per_second_l2,
    read_drivelm,
    token_overlap_judge,
    trajectory_reward_value,
    waypoints_or_malformed,
    write_tiny_drivelm,
)
from mmpost.modalities.driving.processing import openread_answer_text
from mmpost.modalities.driving.rewards import driving_judge, driving_trajectory
from mmpost.types import DataError, MediaError

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "drivelm"


def fixture_json() -> Path:
    path = FIXTURE / "train_sample.json"
    assert path.is_file(), f"the real DriveLM fixture is missing: {path}"  # fail, never skip
    return path


# ---- DriveLM fixture --------------------------------------------------------------------------
def test_camera_order_is_drivelms():
    data = json.loads(fixture_json().read_text())
    orders = {tuple(frame["image_paths"]) for scene in data.values() for frame in scene["key_frames"].values()}
    assert orders == {NUSCENES_CAMERAS}


def test_reader_on_the_real_fixture():
    samples = read_drivelm(fixture_json())
    data = json.loads(fixture_json().read_text())
    expected = sum(len(items) for scene in data.values() for frame in scene["key_frames"].values() for items in frame["QA"].values())
    assert len(samples) == expected
    first = samples[0]
    scene, frame = next(iter(data.items()))[0], next(iter(next(iter(data.values()))["key_frames"]))
    assert first["id"] == f"{scene}_{frame}_0" and first["category"] == "perception"
    assert first["problem"] == data[scene]["key_frames"][frame]["QA"]["perception"][0]["Q"]
    paths = {p for s in samples for p in s["cameras"].values()}
    assert len(paths) == 54 and all(Path(p).is_file() for p in paths)
    assert all(f"/samples/{camera}/" in path for s in samples[:20] for camera, path in s["cameras"].items())
    behaviour = read_drivelm(fixture_json(), categories=["behavior"])
    assert len(behaviour) == 9 and all(s["category"] == "behavior" for s in behaviour)


def test_decode_real_frames_in_camera_order():
    sample = read_drivelm(fixture_json(), categories=["behavior"])[0]
    decoded = DrivingModality(min_pixels=56 * 56, max_pixels=112 * 112).decode(sample)["decoded"]
    assert decoded["camera_names"] == list(NUSCENES_CAMERAS) and decoded["missing_cameras"] == []
    assert decoded["image_sizes"] == [(1600, 900)] * 6


def test_bad_drivelm_files_are_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_drivelm(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="bad.json"):
        read_drivelm(tmp_path / "bad.json")
    with pytest.raises(DataError, match="categories"):
        read_drivelm(fixture_json(), categories=["weather"])


# ---- missing cameras ------------------------------------------------------------------------------
def test_missing_camera_is_an_error_naming_sample_and_camera(tmp_path):
    sample = read_drivelm(write_tiny_drivelm(tmp_path, omit=["CAM_BACK"]))[0]
    with pytest.raises(MediaError, match=r"scene0_frame0_0.*camera CAM_BACK is missing"):
        DrivingModality().decode(sample)
    sample["cameras"]["CAM_BACK"] = str(tmp_path / "gone.jpg")
    with pytest.raises(MediaError, match=r"scene0_frame0_0.*camera CAM_BACK.*gone.jpg"):
        DrivingModality().decode(sample)


def test_black_frame_fallback_is_recorded(tmp_path, caplog):
    sample = read_drivelm(write_tiny_drivelm(tmp_path, size=(64, 36), omit=["CAM_BACK_LEFT"]))[0]
    decoded = DrivingModality(missing_camera="black").decode(sample)["decoded"]
    index = list(NUSCENES_CAMERAS).index("CAM_BACK_LEFT")
    assert decoded["missing_cameras"] == ["CAM_BACK_LEFT"] and "CAM_BACK_LEFT" in caplog.text
    assert decoded["images"][index].size == (64, 36) and decoded["images"][index].getextrema() == ((0, 0),) * 3
    assert decoded["images"][0].getextrema() != ((0, 0),) * 3


def test_encode_prompt_six_views(tiny_vl_dir, tmp_path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    sample = read_drivelm(write_tiny_drivelm(tmp_path, size=(112, 56)))[0]
    messages = [{"role": "user", "content": camera_content(NUSCENES_CAMERAS, "What now?")}]
    encoding = DrivingModality().encode_prompt(processor, messages, sample)
    assert encoding.media["image_grid_thw"].shape == (6, 3)
    assert encoding.text.index("CAM_FRONT:") < encoding.text.index("CAM_FRONT_LEFT:") < encoding.text.index("CAM_BACK_RIGHT:")
    with pytest.raises(DataError, match="6 camera view"):
        DrivingModality().encode_prompt(processor, [{"role": "user", "content": camera_content(["CAM_FRONT"], "x")}], sample)


def test_custom_camera_list_and_ego_state():
    sample = {"id": "s", "cameras": {"BEV": Image.new("RGB", (56, 56))}, "ego_state": {"speed": 5, "gear": "D"}}
    decoded = DrivingModality(cameras=["BEV"]).decode(sample)["decoded"]
    assert decoded["camera_names"] == ["BEV"] and decoded["ego_state"] == {"speed": 5, "gear": "D"}
    assert format_ego_state(sample["ego_state"]) == "Ego state: speed 5.0 m/s, gear D."
    assert format_ego_state(None) == ""
    with pytest.raises(MediaError, match="CAM_FRONT"):
        DrivingModality().decode(sample)


# ---- trajectory reward (OpenREAD TrajExpReward) -------------------------------------------------
def gold():
    return np.zeros((6, 2))


def test_trajectory_reward_by_hand():
    predicted = np.array([[0.2, 0], [0, 0.2], [1, 0], [0, 1], [8, 0], [0, 8]], dtype=float)
    assert per_second_l2(predicted, gold()) == pytest.approx([0.2, 1.0, 8.0])
    # (exp(-5·0.2)·1 + exp(-2·1)·1 + exp(-1·8)·[8 <= 7 is false]) / 3
    assert trajectory_reward_value(predicted, gold()) == pytest.approx((math.exp(-1.0) + math.exp(-2.0)) / 3)
    assert trajectory_reward_value(gold(), gold()) == pytest.approx(1.0)
    # the threshold is inclusive: d_3 = 7 still counts
    at_threshold = np.array([[0, 0], [0, 0], [0, 0], [0, 0], [7, 0], [0, 7]], dtype=float)
    assert trajectory_reward_value(at_threshold, gold()) == pytest.approx((1 + 1 + math.exp(-7)) / 3)
    omni = trajectory_reward_value(predicted, gold(), temperatures=(0.7, 0.7, 0.3))
    assert omni == pytest.approx((math.exp(-0.14) + math.exp(-0.7)) / 3)


def test_waypoint_parsing_follows_the_official_plugin():
    text = "(0.0, 1.0), (0.1, 2.0), (0.2, 3.0), (0.3, 4.0), (0.4, 5.0), (0.5, 6.0)"
    assert parse_waypoints(text)[5].tolist() == [0.5, 6.0]
    assert parse_waypoints(text + ", (1, 1)") is None  # seven points: malformed
    assert parse_waypoints(text.replace("0.3", "0.3.1")) is None  # matches the pattern, fails float()
    points, malformed = waypoints_or_malformed("no idea")
    assert malformed and points.tolist() == [[100.0, 100.0]] * 6
    assert openread_answer_text("<think>(9, 9)</think><answer> (1, 2) </answer><answer>x</answer>") == "(1, 2)"


def test_driving_trajectory_reward_on_samples():
    sample = {"id": "d", "waypoints": [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0, 6]]}
    good = "<answer>(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6)</answer>"
    five = "<answer>(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)</answer>"
    assert driving_trajectory([good, five], [sample] * 2) == pytest.approx([1.0, 0.0])
    text_gold = {"id": "t", "waypoints": "(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6)"}
    assert driving_trajectory([good], [text_gold]) == pytest.approx([1.0])
    with pytest.raises(DataError, match="'d'"):
        driving_trajectory([good], [{"id": "d", "waypoints": [[0, 1]]}])


# ---- LLM critic -------------------------------------------------------------------------------------
def test_critic_score_takes_the_last_match():
    assert critic_score("first ****0.2**** then ****0.9****") == 0.9
    assert critic_score("****1****") == 1.0 and critic_score("****7****") == 1.0  # clipped to [0, 1]
    assert critic_score("a score of 0.8") is None and critic_score(None) is None


def test_judge_reward_with_a_local_callable(tmp_path):
    replies = {"Keep going straight.": "Looks right ****0.5**** no wait ****0.75****", "Turn left.": "I cannot say"}
    prompts = []

    def critic(prompt, system):
        prompts.append((prompt, system))
        return replies[prompt.split("Predicted Answer: ")[1].split("\n")[0]]

    judge = Judge(local=critic, cache_dir=tmp_path / "cache", name="test-critic")
    sample = {"id": "q1", "answer": "Go straight."}
    completions = ["<answer>Keep going straight.</answer>", "Turn left."]
    JUDGE_REWARD_STATS.pop("test-critic", None)
    assert driving_judge(completions, [sample] * 2, judge=judge) == [0.75, 0.0]
    assert JUDGE_REWARD_STATS["test-critic"]["parse_failures"] == 1 and JUDGE_REWARD_STATS["test-critic"]["scored"] == 1
    assert "Reference Answer: Go straight." in prompts[0][0] and "hallucination" in prompts[0][1]
    assert driving_judge(completions, [sample] * 2, judge=judge, binarize=True) == [1.0, 0.0]
    assert judge.stats.cache_hits == 2 and len(prompts) == 2  # the second pass came from the cache


def test_judge_failures_score_zero_and_are_counted():
    def broken(prompt, system):
        raise ConnectionError("no server")

    JUDGE_REWARD_STATS.pop("broken", None)
    assert driving_judge(["a"], [{"id": "q", "answer": "b"}], judge=Judge(local=broken, name="broken")) == [0.0]
    assert JUDGE_REWARD_STATS["broken"]["judge_failures"] == 1
    with pytest.raises(ValueError, match="needs `judge`"):
        driving_judge(["a"], [{"id": "q", "answer": "b"}])


def test_judge_from_a_config_spec_and_the_offline_stand_in():
    spec = {"local": "mmpost.modalities.driving.rewards:token_overlap_judge"}
    sample = {"id": "q", "answer": "Keep going straight."}
    assert driving_judge(["<answer>keep going straight</answer>", "stop now"], [sample] * 2, judge=spec) == pytest.approx([1.0, 0.0])
    # F1 of {keep, going} vs {keep, going, straight}: precision 1, recall 2/3 -> 0.8
    assert critic_score(token_overlap_judge("Predicted Answer: keep going\nReference Answer: keep going straight")) == pytest.approx(0.8)
