"""DriveLM-nuScenes challenge scorer (OpenDriveLab/DriveLM `challenge/evaluation.py`).

Per question `tag` (a list; a question can carry several):
- 0 accuracy: raw string equality between prediction and ground truth (no letter extraction);
- 1 "ChatGPT score": an LLM rates the answer 0-100 against the ground truth (`gpt_eval.py`; the
  official call uses gpt-3.5-turbo at temperature 0.6, so it is not deterministic);
- 2 language: BLEU-1..4, ROUGE-L, CIDEr (pycocoevalcap through `language_evaluation`);
- 3 match: mean of (F1 of predicted vs ground-truth object-centre coordinates x100; greedy, nearest
  remaining GT by L1 distance, matched when < 16 px) and the ChatGPT score of the same items.
Gating: the first question of each frame is always scored and its matched GT coordinates form the
frame's object set; every later question is scored only if every coordinate pair in its *question*
belongs to that set.
Final = 0.4*chatgpt/100 + 0.2*language + 0.2*match/100 + 0.2*accuracy, with
language = mean(BLEU-1..4)/3 + ROUGE-L/3 + CIDEr/30.

The LLM part goes through `mmpost.eval.judge.Judge`; without a judge the ChatGPT, match and final
scores are None (never replaced by another rule). A reply that is not a number is a counted judge
failure and the item is left out of that mean.

Language metrics use `caption_metrics`: with pycocoevalcap + Java present (`language_tokenizer="auto"`
or "java") they are the official numbers; otherwise a Python PTB-like tokenizer is used (exact on the
challenge's sample files, approximate on unusual text) and the result's notes say so.

The challenge README's "sampled data" language numbers (BLEU-1 0.0495, ROUGE-L 0.0838, CIDEr 0.0990)
are not what the official code gives on the checked-in `output.json` + `test_eval.json`: the official
pipeline (pycocoevalcap 1.2, Stanford PTBTokenizer 3.4.1) gives BLEU-1 0.19878, ROUGE-L 0.18422,
CIDEr 0.00172 there. All 9 tag-2 questions are the first question of their frame, so no gating
variant changes the scored set; the README numbers must come from other prediction/GT files (its
"test data" numbers, BLEU-1 0.238 / CIDEr 0.0074, are in the same range as ours).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmpost.registry import BENCHMARKS, SCORERS

from mmpost.eval.common import (
    Benchmark, BenchmarkDataError, check_mode, data_file, make_result, read_json, read_json_rows, require_fields,
    resolve_media_path, sample_record,
)
from mmpost.judge import Judge
from mmpost.eval.scorers.caption_metrics import coco_language_scores, resolve_tokenizer

NAME = "drivelm"
MODES = ("official",)
QA_GROUPS = ("perception", "prediction", "planning", "behavior")
WEIGHTS = {"chatgpt": 0.4, "language": 0.2, "match": 0.2, "accuracy": 0.2}
MATCH_DISTANCE_PX = 16.0
JUDGE_SYSTEM = "an evaluator who rates my answer based on the correct answer"
_DECIMAL = re.compile(r"\d+\.\d+")


def load_drivelm(data_dir: str | Path, limit: int | None = None) -> list[dict]:
    """Flatten `test_eval.json` ({scene: {key_frames: {frame: {QA: {perception, prediction,
    planning, behavior: [{Q, A, tag, ...}]}, image_paths}}}}) into items with the official id
    `<scene>_<frame>_<index within frame>` and `first_in_frame`."""
    path = data_file(data_dir, "test_eval.json")
    scenes = read_json(path, "DriveLM ground truth")
    if not isinstance(scenes, dict):
        raise BenchmarkDataError(f"DriveLM: {path} must map scene token -> scene, got {type(scenes).__name__}")
    items = []
    for scene_id, scene in scenes.items():
        require_fields(scene, ["key_frames"], f"DriveLM {path} scene {scene_id}")
        for frame_id, frame in scene["key_frames"].items():
            require_fields(frame, ["QA"], f"DriveLM {path} frame {frame_id}")
            qa = frame["QA"]
            questions = [q for group in QA_GROUPS for q in qa.get(group, [])]
            for index, question in enumerate(questions):
                require_fields(question, ["Q", "A", "tag"], f"DriveLM {path} frame {frame_id} question {index}")
                items.append({"id": f"{scene_id}_{frame_id}_{index}", "scene": scene_id, "frame": frame_id,
                              "question": question["Q"], "answer": question["A"], "tag": list(question["tag"]),
                              "first_in_frame": index == 0, "image_paths": frame.get("image_paths", {})})
    return items[:limit] if limit is not None else items


def load_drivelm_predictions(path: str | Path, data: list[dict] | None = None) -> list[dict]:
    """Join the official `output.json` ([{id, question, answer}]) with the ground truth `data`."""
    if data is None:
        raise BenchmarkDataError("DriveLM predictions need the ground truth (test_eval.json): pass `data`")
    by_id = {row["id"]: row["answer"] for row in read_json_rows(path, "DriveLM predictions", ["id", "answer"])}
    missing = [item["id"] for item in data if item["id"] not in by_id]
    if missing:
        raise BenchmarkDataError(f"DriveLM: {path} has no answer for {len(missing)} ground-truth id(s), e.g. {missing[:3]}")
    return [dict(item, prediction=by_id[item["id"]]) for item in data]


def build_prompt(item: dict) -> str:
    """The challenge feeds the question text as is (multiple-choice options are inside it)."""
    return item["question"]


def extract(item: dict, output: str) -> str:
    """No extraction: the official accuracy compares raw strings."""
    return output


def _coordinate_pairs(text: str) -> list[tuple[float, float]]:
    numbers = [float(value) for value in _DECIMAL.findall(text)]
    return [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers) - 1, 2)]


def match_objects(prediction: str, ground_truth: str) -> tuple[list[tuple[float, float]], float]:
    """(matched GT centres, F1) by greedy nearest-GT L1 matching under 16 px (`match_result`).

    Each predicted pair, in order, takes the closest still-unmatched GT pair; a distance < 16 is a
    true positive (that GT is removed), otherwise a false positive. F1 uses the official 1e-8 terms.
    An odd count of predicted numbers drops the last one, as the official code does.
    """
    predicted = _coordinate_pairs(prediction)
    remaining = _coordinate_pairs(ground_truth)
    total_gt = len(remaining)
    matched: list[tuple[float, float]] = []
    true_positives = false_positives = 0
    for point in predicted:
        distances = [abs(point[0] - gt[0]) + abs(point[1] - gt[1]) for gt in remaining]
        if distances and min(distances) < MATCH_DISTANCE_PX:
            closest = distances.index(min(distances))
            true_positives += 1
            matched.append(remaining.pop(closest))
        else:
            false_positives += 1
    false_negatives = total_gt - true_positives
    precision = true_positives / (true_positives + false_positives + 1e-8)
    recall = true_positives / (true_positives + false_negatives + 1e-8)
    return matched, 2 * precision * recall / (precision + recall + 1e-8)


def judge_prompt(prediction: str, ground_truth: str) -> str:
    return ("Rate my answer based on the correct answer out of 100, with higher scores indicating that the answer is "
            "closer to the correct answer, and you should be accurate to single digits like 62, 78, 41,etc. "
            "Output the number only" + "This is the correct answer: " + ground_truth + "This is my answer: " + prediction)


def language_score(language: dict[str, float]) -> float:
    """mean(BLEU-1..4)/3 + ROUGE-L/3 + CIDEr/30, in pycocoevalcap key order (as `evaluation.py` sums them)."""
    values = list(language.values())
    return sum(values[:4]) / 4 / 3 + values[4] / 3 + values[5] / 10 / 3


def final_score(chatgpt: float, language: dict[str, float], match: float, accuracy: float) -> float:
    """The challenge's weighted final score (chatgpt and match in 0-100, accuracy in 0-1)."""
    return (WEIGHTS["chatgpt"] * chatgpt / 100 + WEIGHTS["language"] * language_score(language)
            + WEIGHTS["match"] * match / 100 + WEIGHTS["accuracy"] * accuracy)


def _judge_scores(pairs: list[tuple[str, str]], judge: Judge | None) -> tuple[list[float], int]:
    if judge is None:
        return [], 0
    scores, failures = [], 0
    for prediction, ground_truth in pairs:
        reply = judge(judge_prompt(prediction, ground_truth), JUDGE_SYSTEM)
        try:
            scores.append(float(reply))
        except (TypeError, ValueError):
            failures += 1
    return scores, failures


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_drivelm(predictions: list[dict], *, mode: str = "official", judge: Judge | None = None,
                  language_tokenizer: str = "auto") -> dict:
    """Accuracy, ChatGPT, language, match and final score on the gated questions.

    `language_tokenizer`: "auto" (Java PTB tokenizer when pycocoevalcap and java are present, else
    Python), "java" (official; error when missing) or "python" (approximation).
    """
    check_mode(mode, MODES, NAME)
    tokenizer = resolve_tokenizer(language_tokenizer)
    accuracy_rows: list[bool] = []
    chatgpt_pairs: list[tuple[str, str]] = []
    language_pairs: list[tuple[str, str]] = []
    match_f1: list[float] = []
    match_pairs: list[tuple[str, str]] = []
    samples = []
    frame_objects: list[tuple[float, float]] = []
    gated_out = 0
    for item in predictions:
        prediction, ground_truth, tags = item["prediction"], item["answer"], item["tag"]
        if item["first_in_frame"]:
            frame_objects, _ = match_objects(prediction, ground_truth)
        elif not all(pair in frame_objects for pair in _coordinate_pairs(item["question"])):
            gated_out += 1
            samples.append(sample_record(item["id"], build_prompt(item), prediction, prediction, ground_truth,
                                         0.0, tag=tags, scored=False))
            continue
        exact = prediction == ground_truth
        if 0 in tags:
            accuracy_rows.append(exact)
        if 1 in tags:
            chatgpt_pairs.append((prediction, ground_truth))
        if 2 in tags:
            language_pairs.append((prediction, ground_truth))
        f1 = None
        if 3 in tags:
            _, f1 = match_objects(prediction, ground_truth)
            match_f1.append(f1 * 100)
            match_pairs.append((prediction, ground_truth))
        samples.append(sample_record(item["id"], build_prompt(item), prediction, prediction, ground_truth,
                                     float(exact), tag=tags, scored=True, match_f1=f1))
    chatgpt_scores, chatgpt_failures = _judge_scores(chatgpt_pairs, judge)
    match_judge_scores, match_failures = _judge_scores(match_pairs, judge)
    accuracy = _mean([float(ok) for ok in accuracy_rows])
    chatgpt = _mean(chatgpt_scores)
    language = (coco_language_scores([p for p, _ in language_pairs], [g for _, g in language_pairs], tokenizer)
                if language_pairs else None)
    f1_mean = _mean(match_f1)
    match_judge = _mean(match_judge_scores)
    match = (f1_mean + match_judge) / 2 if f1_mean is not None and match_judge is not None else None
    final = (final_score(chatgpt, language, match, accuracy)
             if None not in (chatgpt, language, match, accuracy) else None)
    metrics: dict[str, Any] = {
        "accuracy": accuracy, "chatgpt": chatgpt, "match": match, "match_f1": f1_mean,
        "language_score": language_score(language) if language else None, "final_score": final,
    }
    metrics.update({f"language/{key}": value for key, value in (language or {}).items()})
    scored = len(predictions) - gated_out
    result = make_result(
        NAME, mode, metrics, total=len(predictions), answered=scored, unparseable=0, samples=samples,
        breakdown={"tag_counts": {"accuracy": len(accuracy_rows), "chatgpt": len(chatgpt_pairs),
                                  "language": len(language_pairs), "match": len(match_pairs)}},
        extra_counts={"gated_out": gated_out, "judge_failed": chatgpt_failures + match_failures},
        notes=(["language metrics: official pycocoevalcap PTB tokenizer (Java)"] if tokenizer == "java" else
               ["language metrics: Python approximation of the PTB tokenizer (pycocoevalcap/java not found)"])
              + ([] if judge else ["no judge: chatgpt, match and final_score are None (judge=none)"]),
    )
    if judge is not None:
        result["judge"] = judge.report()
    return result


def media(item: dict, data_dir: Path) -> dict:
    """The frame's camera images in the annotation's order (CAM_FRONT, CAM_FRONT_LEFT, ...), paths
    relative to the folder of test_eval.json (the challenge's "../nuscenes/samples/..." included)."""
    paths = item.get("image_paths") or {}
    return {"images": [resolve_media_path(data_dir, path, f"DriveLM {item['id']} {camera}", ("",))
                       for camera, path in paths.items()]}


SCORERS.add(NAME, score_drivelm)
BENCHMARKS.add(NAME, Benchmark(
    name=NAME, load=load_drivelm, build_prompt=build_prompt, extract=extract, score=score_drivelm,
    load_predictions=load_drivelm_predictions, modes=MODES, media=media, response_key="prediction",
    description="DriveLM-nuScenes challenge (accuracy, GPT score, language, match; weighted final)",
))
