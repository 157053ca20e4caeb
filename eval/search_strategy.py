"""`mmpost eval search`: answer a step-format task's questions with an inference strategy and score them.

    mmpost eval search --model POLICY_DIR --strategy greedy|best_of_n|prm_mcts [--prm PRM_DIR]
                       --task propa_digits [--task-arg KEY=VALUE ...] [--split heldout] [--limit N] [--output DIR]

Strategies (PROPA, `mmpost.search.prm`): "greedy" (one greedy step at a time, official greedy baseline),
"best_of_n" (per step, the PRM-best of `num_children` samples, official `bestN_test_intern.py`) and "prm_mcts"
(MCTS whose node values are PRM scores; answer = the terminal path with the highest mean score, official
`MCTS_test_intern.py` + `find_best_path.py`). Any registered task works whose rows carry a question the task's
`prompt` renders and the ground truth in `answer`; a row is correct when its final step contains
"the final answer is {answer}" (`is_correct_step`). Writes into `output`:

- `results.json`: accuracy, counts (questions, correct, without a final answer), the strategy and its settings,
  the task, split and task arguments, the model and PRM paths, package versions;
- `samples_search.jsonl`: one line per question: id, question, steps, final answer ("" if none), target, score
  (1 correct / 0 not) and the strategy's own path score.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

STRATEGIES = ("greedy", "best_of_n", "prm_mcts")
NEEDS_PRM = ("best_of_n", "prm_mcts")


@dataclass(frozen=True)
class SearchSettings:
    """The strategy's knobs (official values as defaults). `num_children` is also best-of-n's n; `max_steps`
    caps greedy and best-of-n chains (MCTS stops by its iteration rule)."""

    num_children: int = 4
    min_iterations: int = 25
    min_final_answers: int = 2
    max_iterations: int = 100
    exploration: float = 1.0
    max_steps: int = 20


def check_strategy(strategy: str, has_prm: bool) -> None:
    """Refuse an unknown strategy, or a PRM strategy without a PRM, naming the flag to add."""
    if strategy not in STRATEGIES:
        raise ValueError(f"eval search: unknown --strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    if strategy in NEEDS_PRM and not has_prm:
        raise ValueError(f"eval search: --strategy {strategy} scores steps with a process reward model; "
                         "give its folder with --prm PRM_DIR (one saved by ProcessRewardModel.save)")


def answer_questions(strategy: str, proposer: Any, questions: int, settings: SearchSettings, *, prm: Any = None,
                     encoder: Any = None) -> list:
    """One `SearchAnswer` per question index 0..questions-1 of `proposer` (and of `encoder` for PRM strategies)."""
    from mmpost.search.prm import best_of_n_answer, greedy_answer, prm_guided_answer

    check_strategy(strategy, prm is not None)
    if strategy == "greedy":
        return greedy_answer(proposer, questions, max_steps=settings.max_steps)
    if encoder is None:
        raise ValueError(f"eval search: --strategy {strategy} needs a PathEncoder over the same questions")
    if strategy == "best_of_n":
        return best_of_n_answer(proposer, prm, encoder, questions, n=settings.num_children, max_steps=settings.max_steps)
    return prm_guided_answer(proposer, prm, encoder, questions, num_children=settings.num_children,
                             min_iterations=settings.min_iterations, min_final_answers=settings.min_final_answers,
                             max_iterations=settings.max_iterations, exploration=settings.exploration)


def target_of(sample: dict, position: int) -> str:
    if "answer" not in sample or sample["answer"] is None:
        raise ValueError(f"eval search: row {sample.get('id', position)!r} has no `answer` field (the ground truth "
                         "the step format's final step is checked against)")
    return str(sample["answer"])


def score_answers(answers: Sequence, samples: Sequence[dict]) -> list[float]:
    """1.0 where the answer's final step contains "the final answer is {target}" (PROPA's check), else 0.0."""
    from mmpost.search.mcts import is_correct_step

    if len(answers) != len(samples):
        raise ValueError(f"eval search: {len(answers)} answers for {len(samples)} questions")
    return [1.0 if is_correct_step(a.text, target_of(s, i)) else 0.0 for i, (a, s) in enumerate(zip(answers, samples))]


def accuracy_of(answers: Sequence, samples: Sequence[dict]) -> float:
    scores = score_answers(answers, samples)
    return sum(scores) / len(scores) if scores else 0.0


def question_text(task: Any, sample: dict) -> str:
    """The text of the task's prompt for `sample` (its text parts joined), as the policy reads it."""
    parts = []
    for message in task.prompt(sample):
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [part["text"] for part in content if part.get("type") == "text"]
    return " ".join(parts)


def build_task(name: str, task_args: dict | None) -> Any:
    import mmpost.tasks  # noqa: F401  (registers the built-in tasks)
    from mmpost.registry import TASKS

    task_class = TASKS.get(name)
    return task_class(**(task_args or {})) if isinstance(task_class, type) else task_class


def run_search_evaluation(
    model: str | os.PathLike,
    strategy: str,
    *,
    prm: str | os.PathLike | Any | None = None,
    prm_base: str | os.PathLike | None = None,
    task: str = "propa_digits",
    task_args: dict | None = None,
    split: str = "heldout",
    limit: int | None = None,
    output: str | os.PathLike | None = "eval_results",
    settings: SearchSettings = SearchSettings(),
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    system_prompt: str | None = None,
    seed: int | None = 0,
    dtype: str = "auto",
) -> dict:
    """Answer `task`'s `split` (first `limit` rows) with `strategy` and score it; returns the results.json dict.

    model: a policy folder or a training run directory (its latest checkpoint). prm: a PRM folder (LoRA PRMs also
    need `prm_base`, default the policy) or an already built `ProcessRewardModel`. system_prompt: None = PROPA's
    step system prompt. seed: seeds torch before searching (None leaves the generator as it is).
    """
    import torch

    from mmpost.eval.runner import default_device, load_eval_model, resolve_model_dir
    from mmpost.eval.score_cli import package_versions
    from mmpost.registry import MODALITIES
    from mmpost.search.mcts import STEP_SYSTEM_PROMPT
    from mmpost.search.prm import PathEncoder, ProcessRewardModel, load_prm, policy_proposer

    check_strategy(strategy, prm is not None)
    task_obj = build_task(task, task_args)
    samples = list(task_obj.load(split))[: limit if limit is not None else None]
    if not samples:
        raise ValueError(f"eval search: task {task!r} split {split!r} has no rows (limit={limit})")
    targets = [target_of(s, i) for i, s in enumerate(samples)]
    modality_class = MODALITIES.get(task_obj.modality)
    modality = modality_class() if isinstance(modality_class, type) else modality_class

    model_dir = resolve_model_dir(model)
    device = default_device()
    policy, processor = load_eval_model(model_dir, dtype=dtype, device=device)
    reward_model, prm_path = None, None
    if isinstance(prm, ProcessRewardModel):
        reward_model, prm_path = prm, "<in memory>"
    elif prm is not None:
        reward_model = load_prm(prm, base=prm_base if prm_base is not None else model_dir).to(device).eval()
        prm_path = str(prm)
    if seed is not None:
        torch.manual_seed(seed)
    proposer = policy_proposer(policy, processor, task_obj, modality, samples, max_new_tokens=max_new_tokens,
                               temperature=temperature,
                               system_prompt=STEP_SYSTEM_PROMPT if system_prompt is None else system_prompt)
    encoder = PathEncoder(processor, task_obj, modality, samples) if reward_model is not None else None
    answers = answer_questions(strategy, proposer, len(samples), settings, prm=reward_model, encoder=encoder)
    scores = score_answers(answers, samples)

    without_final = sum(1 for a in answers if not a.text)
    results = {
        "task": task, "split": split, "task_args": task_args or {}, "limit": limit,
        "strategy": strategy, "settings": {**asdict(settings), "max_new_tokens": max_new_tokens,
                                           "temperature": temperature, "system_prompt": proposer.system_prompt,
                                           "seed": seed, "dtype": dtype},
        "model": str(model_dir), "prm": prm_path,
        "metrics": {"accuracy": sum(scores) / len(scores)},
        "counts": {"questions": len(samples), "correct": int(sum(scores)), "no_final_answer": without_final},
        "versions": package_versions(),
    }
    if output is not None:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "samples_search.jsonl", "w", encoding="utf-8") as handle:
            for sample, answer, target, score in zip(samples, answers, targets, scores):
                handle.write(json.dumps({"id": sample.get("id"), "question": question_text(task_obj, sample),
                                         "steps": answer.steps, "final_answer": answer.text, "target": target,
                                         "score": score,
                                         "path_score": answer.score if math.isfinite(answer.score) else None}, ensure_ascii=False) + "\n")
        (folder / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    return results
