"""The reflector calibrated on world-model frames (zoo "world-env-reflector-wm"; a reconstruction, session 6 of #12).

Measured (benchmarks/results/learning_world_env_s6_diagnosis_warm.md): on the warm-start VLA's own episodes in the
world model, the GT-trained reflector calls success on 23% of imagined frames whose true state (the same actions
replayed in the ground truth) is not a success, rising from 0 at step 1 to 0.45 at step 16, against 1.6% on the GT
frames of the same states; the imagined robot itself lies within the success radius of the target on only 3% of
them. The chained frames blur (the robot disc loses bright pixels to grey halos, which the reflector's view reads as
target pixels; faint pixels appear), a look the reflector never saw. World-Env fine-tunes its reflector on
success/failure rollouts; this does it on world-model frames: imagined frames of (a) the VLA's own episodes at the
training temperature and (b) noisy-expert episodes (so that imagined successes are in the data), each labelled by
the success score of the TRUE state of the same actions replayed in the ground truth, mixed half and half with the
original balanced GT frames (so real frames stay judged), fine-tuned from the GT reflector. The termination
threshold is picked on imagined frames of other training starts (best balanced accuracy against the per-step truth).
Only training starts are used.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mmpost.registry import MODEL_ZOO
from mmpost.tasks.robot_reach.sim import distance, expert_chunk
from mmpost.tasks.robot_reach.sim import step as reach_step
from mmpost.tasks.world_env.env import WorldEnvConfig, render_frame, success_score
from mmpost.tasks.world_env.models import (REFLECTOR_META, _stack_inputs, artifact, default_artifacts_dir, evaluate_reflector,
                                           fit_reflector, load_reflector, load_world_model, pick_threshold,
                                           reflector_examples, success_call_metrics)

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "world_env.yaml"
# Rows of the task's train split used here: fitting after the first CALIBRATION_OFFSET (the diagnosis reads rows
# 0..15), selection after those. All are training starts; held-out starts are never drawn.
CALIBRATION_OFFSET = 64
CALIBRATION_VERSION = "v1"


class Recording:
    """Wraps a frame generator or a scorer and keeps every output (used with no termination: all rows stay active)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.outputs = inner, []

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        self.outputs.append(torch.as_tensor(out).detach().clone())
        return out

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def replay_truth(rows: Sequence[dict], action_sequences: Sequence[np.ndarray], config: WorldEnvConfig) -> dict:
    """The same actions from each row's start in the ground truth: per step true position, success, score, GT frame."""
    count, steps = len(action_sequences), len(action_sequences[0])
    out = {"true_pos": np.zeros((count, steps, 2)), "true_success": np.zeros((count, steps), dtype=bool),
           "true_score": np.zeros((count, steps)), "targets": np.zeros((count, 2)),
           "gt_frames": np.zeros((count, steps, config.frame_size, config.frame_size), dtype=np.uint8)}
    for b, (row, actions) in enumerate(zip(rows, action_sequences)):
        position, target = np.asarray(row["position"], float), np.asarray(row["target"], float)
        out["targets"][b] = target
        for t, action in enumerate(np.asarray(actions, dtype=np.float64).reshape(-1, 2)[:steps]):
            position = reach_step(position, action, config.reach)
            out["true_pos"][b, t] = position
            out["true_success"][b, t] = distance(position, target) <= config.success_radius
            out["true_score"][b, t] = success_score(position, target, config)
            out["gt_frames"][b, t] = render_frame(position, target, config)
    return out


def policy_episodes(policy_dir: str | Path, rows_from: int, starts: int, group: int, *, generator: Any, seed: int = 0,
                    temperature: float | None = None) -> dict:
    """`group` episodes of the VLA from each of the train rows rows_from..rows_from+starts-1 in the world model, all
    `max_steps` steps (no termination), and their GT replay: frames [B, T, S, S], actions [B, T, 2], truth arrays."""
    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.envs import WorldModelEnv, run_episodes
    from mmpost.rollout.base import SamplingParams

    torch.manual_seed(seed)
    overrides = [f"model.path={policy_dir}", "model.zoo=null", f"data.task_args.train_size={rows_from + starts}",
                 "train.progress=false", "train.threads=1", "train.output_dir=/tmp/mmpost-world-env-calibration",
                 "algorithm.kl_coef=0.0"]
    if temperature is not None:
        overrides.append(f"rollout.temperature={temperature}")
    config = load_config(RECIPE, overrides)
    run = build_run(config)
    task, rows = run.task, list(run.train_rows)[rows_from : rows_from + starts]
    recording = Recording(generator)
    never = lambda frames, states: torch.zeros(frames.shape[:2])  # noqa: E731  (no termination, no reward needed)
    env = WorldModelEnv(recording, never, chunk=task.chunk, threshold=2.0, max_steps=task.config.max_steps)
    params = SamplingParams(n=1, temperature=config.rollout.temperature, max_new_tokens=2 * task.chunk + 1)
    episodes = run_episodes(run.policy, run.backend, env, rows, params, group_size=group,
                            max_policy_calls=task.max_policy_calls, seed=seed)
    frames = torch.cat(recording.outputs, dim=1).numpy()
    actions = [np.concatenate([c.actions for c in e.calls]).reshape(-1, 2)[: frames.shape[1]] for e in episodes]
    episode_rows = [rows[e.initial_index] for e in episodes]
    return {"frames": frames, "actions": np.stack(actions), "rows": episode_rows,
            **replay_truth(episode_rows, actions, task.config)}


def expert_episodes(rows: Sequence[dict], per_row: int, *, generator: Any, config: WorldEnvConfig, seed: int,
                    noise: float = 0.3) -> dict:
    """Noisy-expert episodes in the world model (the expert's action plus Gaussian noise of `noise` x max_step per
    dimension), `per_row` from each row's start, `max_steps` steps; imagined frames and their GT replay."""
    rng = np.random.default_rng(seed)
    episode_rows = [row for row in rows for _ in range(per_row)]
    steps, chunk = config.max_steps, 4
    actions = np.zeros((len(episode_rows), steps, 2))
    for b, row in enumerate(episode_rows):  # the expert reacts to the TRUE state (it is the data, not a policy)
        position, target = np.asarray(row["position"], float), np.asarray(row["target"], float)
        for t in range(steps):
            action = expert_chunk(position, target, 1, config.reach)[0] + rng.normal(0, noise * config.max_step, 2)
            actions[b, t] = np.clip(action, -config.max_step, config.max_step)
            position = reach_step(position, actions[b, t], config.reach)
    first = torch.stack([torch.as_tensor(render_frame(np.asarray(r["position"], float), np.asarray(r["target"], float),
                                                      config)).float() for r in episode_rows])
    window, frames = first[:, None], []
    for start in range(0, steps, chunk):
        out = generator(window, torch.as_tensor(actions[:, start : start + chunk]).float())
        frames.append(out)
        window = out[:, -1:]
    return {"frames": torch.cat(frames, dim=1).numpy(), "actions": actions, "rows": episode_rows,
            **replay_truth(episode_rows, list(actions), config)}


def imagined_call_metrics(reflector: Any, data: dict, threshold: float) -> dict[str, float]:
    """The reflector's per-frame call on imagined frames against the per-step truth (`success_call_metrics`)."""
    frames = data["frames"].reshape(-1, *data["frames"].shape[2:])
    scores = reflector.scores(list(frames)).numpy()
    return {"mae": float(np.abs(scores - data["true_score"].reshape(-1)).mean()),
            **success_call_metrics(scores, data["true_success"].reshape(-1), threshold)}


@MODEL_ZOO.register("world-env-reflector-wm")
def build_calibrated_reflector(out_dir, *, seed: int = 0, base: str | Path | None = None, world_model: str | Path | None = None,
                               policy: str | Path | None = None, starts: int = 32, group: int = 8, expert_per_start: int = 4,
                               select_starts: int = 16, steps: int = 1500, lr: float = 3e-4, batch_size: int = 16,
                               gt_fraction: float = 0.5, temperature: float | None = None) -> Path:
    """Fine-tune the GT reflector (`base`, default artifacts/world-env-reflector) on world-model frames labelled by
    the true score (module docstring); pick its threshold on imagined frames of `select_starts` other training
    starts; save it with metrics on imagined selection frames and on fresh GT frames."""
    started = time.process_time()
    config = WorldEnvConfig()
    root = default_artifacts_dir()
    base = Path(base) if base else root / "world-env-reflector"
    policy = Path(policy) if policy else root / "tiny-vla-world-env"
    generator = artifact("world-env-reach-wm", world_model, load_world_model)
    artifact("world-env-reflector", str(base), load_reflector)  # built on first use
    reflector = load_reflector(base)  # a fresh copy to fine-tune (the cached one stays the GT reflector)
    fit_policy = policy_episodes(policy, CALIBRATION_OFFSET, starts, group, generator=generator, seed=seed,
                                 temperature=temperature)
    select_policy = policy_episodes(policy, CALIBRATION_OFFSET + starts, select_starts, group, generator=generator,
                                    seed=seed + 1, temperature=temperature)
    fit_expert = expert_episodes(fit_policy["rows"][::group], expert_per_start, generator=generator, config=config, seed=seed)
    select_expert = expert_episodes(select_policy["rows"][::group], expert_per_start, generator=generator, config=config,
                                    seed=seed + 1)
    imagined = np.concatenate([d["frames"].reshape(-1, config.frame_size, config.frame_size) for d in (fit_policy, fit_expert)])
    imagined_labels = np.concatenate([d["true_score"].reshape(-1) for d in (fit_policy, fit_expert)])
    gt_frames, gt_labels = reflector_examples(len(imagined) // 2, config, seed=seed)
    encoded_imagined = [reflector.inputs([f]) for f in imagined]
    encoded_gt = [reflector.inputs([f]) for f in gt_frames]
    rng = torch.Generator().manual_seed(seed)
    n_gt = int(round(batch_size * gt_fraction))

    def draw_batch():  # imagined and GT frames mixed in every batch
        i_img = torch.randint(len(encoded_imagined), (batch_size - n_gt,), generator=rng).tolist()
        i_gt = torch.randint(len(encoded_gt), (n_gt,), generator=rng).tolist()
        inputs = _stack_inputs([encoded_imagined[i] for i in i_img] + [encoded_gt[i] for i in i_gt])
        return inputs, torch.tensor([float(imagined_labels[i]) for i in i_img] + [float(gt_labels[i]) for i in i_gt])

    losses = fit_reflector(reflector.prm, draw_batch, steps=steps, lr=lr)
    select = {key: np.concatenate([select_policy[key], select_expert[key]]) for key in ("frames", "true_success", "true_score")}
    select_policy_only = {key: select_policy[key] for key in ("frames", "true_success", "true_score")}
    select_scores = reflector.scores(list(select["frames"].reshape(-1, config.frame_size, config.frame_size))).numpy()
    reflector.threshold = pick_threshold(select_scores, select["true_success"].reshape(-1))
    meta = {"builder_version": CALIBRATION_VERSION, "threshold": reflector.threshold, "base": str(base),
            "train_steps": steps, "lr": lr, "image_size": reflector.image_size, "view": reflector.view_name,
            "imagined_frames": int(len(imagined)), "imagined_success_fraction": float((imagined_labels >= 1.0).mean()),
            "gt_frames": int(len(gt_frames)), "final_loss": float(np.mean(losses[-20:])),
            **{f"select_imagined_{k}": v for k, v in imagined_call_metrics(reflector, select, reflector.threshold).items()},
            **{f"select_policy_{k}": v for k, v in imagined_call_metrics(reflector, select_policy_only, reflector.threshold).items()},
            **{f"heldout_{k}": v for k, v in evaluate_reflector(reflector, 256, config, seed=seed + 2000).items()},
            "cpu_seconds": time.process_time() - started}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reflector.prm.save(out)
    reflector.processor.save_pretrained(str(out))
    (out / REFLECTOR_META).write_text(json.dumps(meta, indent=1))
    return out
