"""A world model whose training data covers the policy's states (zoo "world-env-reach-wm-policy"; a reconstruction,
session 7 of #12).

Why (benchmarks/results/learning_world_env_s6_diagnosis_*.md): the default world model (`world-env-reach-wm`) is
pre-trained on 256 GT trajectories of 8 steps, half expert and half uniform random moves from uniform positions
(`collect_trajectories`). The VLA's own episodes are 16 steps of its binned, sampled actions from the task's grid
starts; on them the imagined robot drifts 0.40 px from the truth after 1 step and 3.55 px after 16 (success radius
1.9 px). World-Env and RLinf train the world model on rollouts of the policy being post-trained (plus
demonstrations); this does that here, in the ground truth, with episodes as long as the recipe's:

- `policy`: the warm-start VLA's own sampled episodes (training-split starts only, the recipe's temperature) in the
  ground-truth env, run all `max_steps` steps (no termination, so the states after a success are covered too);
- `noisy_expert`: the expert's move plus Gaussian noise (`noise` x max_step per dimension) from training starts;
- `expert_random`: `collect_trajectories` as before (expert or uniform random move per step, uniform positions),
  now `max_steps` long.

All are GT frames (the renderer's), so the model is still trained on the truth only; which trajectories it sees is
what changes. Training rows used start at `COVERAGE_OFFSET` (the diagnosis reads rows 0..15, the reflector's
calibration rows 64..111); held-out starts are never drawn.

Measured (session 7; recipes/world_env.md): on the warm start's own episodes with snapped frames, the 300-step
build drifts 2.20 px at step 16 (old 3.55), the reflector's false calls at step 8 fall 0.176 -> 0.067, and the episode
verdict agrees with the truth on 0.766 (old 0.695). Yet GRPO in it, 40 steps from 512 training starts, gains
-0.031 +- 0.056 (-1.0 SE): the returns it is given rank the group's episodes like the truth less often (the
advantage's sign agrees on 0.648, old 0.727). Not the default.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
import numpy as np
import torch

from mmpost.registry import MODEL_ZOO
from mmpost.tasks.robot_reach.sim import expert_chunk
from mmpost.tasks.robot_reach.sim import step as reach_step
from mmpost.tasks.world_env.env import ReachEnv, WorldEnvConfig, collect_trajectories, render_frame
from mmpost.tasks.world_env.models import (WM_META, WM_SAMPLING_STEPS, WorldModelGenerator, default_artifacts_dir,
                                           world_model_error)

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "world_env.yaml"
COVERAGE_OFFSET = 128  # first train row used here (module docstring)
COVERAGE_VERSION = "v1"


class UnendingReachEnv(ReachEnv):
    """The GT reach env that never terminates at success (truncated at `max_steps` only), so a recorded episode has
    every step's state: the world model must also imagine what follows a success."""

    def step(self, action):
        observation, reward, _, _, info = super().step(action)
        return observation, reward, False, self._steps >= self.config.max_steps, info


def trajectories_from_actions(starts: np.ndarray, targets: np.ndarray, actions: np.ndarray, config: WorldEnvConfig) -> dict:
    """GT trajectories (`collect_trajectories`' layout) of these actions [n, L, 2] from these starts [n, 2]."""
    count, length = actions.shape[:2]
    frames = np.zeros((count, length + 1, config.frame_size, config.frame_size), dtype=np.uint8)
    positions = np.zeros((count, length + 1, 2))
    for n in range(count):
        position, target = np.asarray(starts[n], dtype=np.float64), np.asarray(targets[n], dtype=np.float64)
        positions[n, 0], frames[n, 0] = position, render_frame(position, target, config)
        for t in range(length):
            position = reach_step(position, actions[n, t], config.reach)
            positions[n, t + 1], frames[n, t + 1] = position, render_frame(position, target, config)
    return {"frames": frames, "actions": np.asarray(actions, dtype=np.float64), "positions": positions,
            "targets": np.asarray(targets, dtype=np.float64)}


def training_rows(count: int, offset: int = COVERAGE_OFFSET) -> list[dict]:
    """The world_env task's train rows offset..offset+count-1 (initial states on training-split starts)."""
    from mmpost.tasks.world_env.task import WorldEnvTask

    return WorldEnvTask(train_size=offset + count).load("train")[offset:]


def policy_trajectories(policy_dir: str | Path, rows: list[dict], group: int, *, seed: int,
                        temperature: float | None = None) -> dict:
    """`group` sampled episodes of the VLA from each row in the ground truth, all `max_steps` steps (no
    termination), at the recipe's temperature unless given; as GT trajectories."""
    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.envs import GymEnv, run_episodes
    from mmpost.rollout.base import SamplingParams

    torch.manual_seed(seed)
    overrides = [f"model.path={policy_dir}", "model.zoo=null", "train.progress=false", "train.threads=1",
                 "train.output_dir=/tmp/mmpost-world-env-coverage", "algorithm.kl_coef=0.0"]
    if temperature is not None:
        overrides.append(f"rollout.temperature={temperature}")
    config = load_config(RECIPE, overrides)
    run = build_run(config)
    task = run.task
    env = GymEnv([UnendingReachEnv(task.config) for _ in range(len(rows) * group)], chunk=task.chunk)
    params = SamplingParams(n=1, temperature=config.rollout.temperature, max_new_tokens=2 * task.chunk + 1)
    episodes = run_episodes(run.policy, run.backend, env, rows, params, group_size=group,
                            max_policy_calls=task.max_policy_calls, seed=seed)
    steps = task.config.max_steps
    actions = np.stack([np.concatenate([c.actions for c in e.calls]).reshape(-1, 2)[:steps] for e in episodes])
    if actions.shape[1] != steps:
        raise RuntimeError(f"policy_trajectories: episodes of {actions.shape[1]} steps, expected {steps}")
    starts = np.array([rows[e.initial_index]["position"] for e in episodes])
    targets = np.array([rows[e.initial_index]["target"] for e in episodes])
    return trajectories_from_actions(starts, targets, actions, task.config)


def noisy_expert_trajectories(rows: list[dict], per_row: int, config: WorldEnvConfig, *, seed: int,
                              noise: float = 0.3) -> dict:
    """`per_row` episodes from each row's start: the expert's move plus N(0, (noise x max_step)^2) per dimension,
    clipped to the move limit, `max_steps` steps."""
    rng = np.random.default_rng(seed)
    episode_rows = [row for row in rows for _ in range(per_row)]
    actions = np.zeros((len(episode_rows), config.max_steps, 2))
    for b, row in enumerate(episode_rows):
        position, target = np.asarray(row["position"], float), np.asarray(row["target"], float)
        for t in range(config.max_steps):
            action = expert_chunk(position, target, 1, config.reach)[0] + rng.normal(0, noise * config.max_step, 2)
            actions[b, t] = np.clip(action, -config.max_step, config.max_step)
            position = reach_step(position, actions[b, t], config.reach)
    return trajectories_from_actions(np.array([r["position"] for r in episode_rows]),
                                     np.array([r["target"] for r in episode_rows]), actions, config)


def save_world_model(model, out: Path, meta: dict, sampling_steps: int, held: dict, started: float) -> None:
    """Save the frame model to `out` with its metadata, its one-step errors on `held` and the CPU seconds so far."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    generator = WorldModelGenerator(model, max_step=meta["max_step"], sampling_steps=sampling_steps)
    meta = {**meta, **world_model_error(generator, held), "cpu_seconds": time.process_time() - started}
    (out / WM_META).write_text(json.dumps(meta, indent=1))


def concatenate(parts: list[dict]) -> dict:
    return {key: np.concatenate([p[key] for p in parts]) for key in ("frames", "actions", "positions", "targets")}


@MODEL_ZOO.register("world-env-reach-wm-policy")
def build_policy_world_model(out_dir, *, seed: int = 0, policy: str | Path | None = None, policy_starts: int = 128,
                             policy_group: int = 1, noisy_starts: int = 64, noisy_per_start: int = 1,
                             expert_random: int = 128, steps: int = 300, lr: float = 1e-3, batch_size: int = 64,
                             sampling_steps: int = WM_SAMPLING_STEPS, channels: tuple[int, ...] = (32, 64),
                             temperature: float | None = None, progress: bool = True,
                             snapshots: dict[int, str | Path] | None = None) -> Path:
    """The World-Env world model (same architecture and objective as `build_world_model`) pre-trained on GT
    trajectories of `max_steps` steps: the warm-start VLA's own episodes (`policy_starts` training starts x
    `policy_group`), noisy-expert ones (`noisy_starts` x `noisy_per_start`) and `expert_random` expert/random ones.
    Saves it with its metadata: the data mix, one-step errors on held-out GT transitions and on the policy's.
    `snapshots` {k: folder}: also save the model after k < `steps` steps there, as a `steps=k` build would (the
    learning rate is constant; tested), so one long build gives the shorter ones too."""
    from mmpost.tasks.world_models.diffusion_wm import ActionConditionedFrameModel, pretrain_frame_model

    started = time.process_time()
    config = WorldEnvConfig()
    policy = Path(policy) if policy else default_artifacts_dir() / "tiny-vla-world-env"
    if not policy.exists():  # the warm start is a plain model folder, built once
        MODEL_ZOO.get("tiny-vla-world-env")(policy)
    rows = training_rows(policy_starts + noisy_starts)
    parts = {"policy": policy_trajectories(policy, rows[:policy_starts], policy_group, seed=seed, temperature=temperature),
             "noisy_expert": noisy_expert_trajectories(rows[policy_starts:], noisy_per_start, config, seed=seed),
             "expert_random": collect_trajectories(expert_random, config.max_steps, config, seed=seed)}
    data = concatenate(list(parts.values()))
    torch.manual_seed(seed)
    model = ActionConditionedFrameModel(frame_size=config.frame_size, num_frames=1, context_frames=1,
                                        action_kind="continuous", action_dim=2, block_out_channels=tuple(channels),
                                        norm_num_groups=min(8, channels[0]))
    snapshots = {int(k): Path(v) for k, v in (snapshots or {}).items()}
    if any(not 0 < k < steps for k in snapshots):
        raise ValueError(f"build_policy_world_model: snapshot steps {sorted(snapshots)} must lie in 1..{steps - 1}")
    held = collect_trajectories(32, 4, config, seed=seed + 1000)  # as build_world_model's, for comparison
    meta = {"builder_version": COVERAGE_VERSION, "max_step": config.max_step, "frame_size": config.frame_size,
            "sampling_steps": sampling_steps, "noise_seed": 0, "lr": lr, "trajectory_length": config.max_steps,
            "trajectories": {name: int(len(part["actions"])) for name, part in parts.items()}, "policy": str(policy)}

    def snapshot(step: int, trained) -> None:  # on a copy, and the generator draws no global RNG: training is unchanged
        if step in snapshots:
            save_world_model(copy.deepcopy(trained), snapshots[step],
                             {**meta, "train_steps": step, "snapshot_of_steps": steps},
                             sampling_steps, held, started)

    losses = pretrain_frame_model(model, {"frames": data["frames"], "actions": data["actions"] / config.max_step},
                                  steps=steps, lr=lr, seed=seed, batch_size=batch_size,
                                  progress="world-env-reach-wm-policy" if progress else None, on_step=snapshot)
    out = Path(out_dir)
    save_world_model(model, out, {**meta, "train_steps": steps, "final_loss": float(np.mean(losses[-20:]))},
                     sampling_steps, held, started)
    return out

