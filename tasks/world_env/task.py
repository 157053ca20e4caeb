"""The `world_env` task: a VLA post-trained with GRPO inside a learned world model (World-Env, arXiv 2509.24948),
its success always measured in the ground-truth environment.

Rows: `train` is initial states (a task target + a start; `train_rows: demonstrations` gives instead every step
of `demos_per_task` scripted-expert episodes per task, what the SFT warm start trains on), `heldout` is initial
states from held-out starts. A prompt is one frame (the grayscale render as RGB) and the instruction; the answer
is the next `chunk` actions as 2·chunk `<act_i>` tokens (bins over ±max_step).

Environments for the `env_rollouts` source (`algorithm.source_args.env`):
- "world_env_world_model": `WorldModelEnv` over the frozen frame generator and the reflector (World-Env);
- "world_env_ground_truth": `GymEnv` over the gymnasium `ReachEnv` (direct RL in the ground truth, the reference).

`evaluate_policy` runs one greedy episode per held-out row in the GROUND-TRUTH env and counts successes.
"""
from __future__ import annotations

import math
import random
from typing import Any, Sequence

import numpy as np
import torch

from mmpost.envs import GymEnv, WorldModelEnv, run_episodes
from mmpost.modalities.robot.processing import DEFAULT_BINS, ActionStats, ActionTokenizer, bin_centres, parse_action_bins
from mmpost.registry import ENVIRONMENTS, MODEL_ZOO, TASKS
from mmpost.rollout.base import SamplingParams
from mmpost.tasks.common import canonical_split
from mmpost.tasks.robot_reach.sim import distance
from mmpost.tasks.robot_reach.sim import step as reach_step
from mmpost.tasks.world_env.env import GYM_ID, TASK_TARGETS, WorldEnvConfig, draw_start, expert_steps, render_frame
from mmpost.tasks.world_env.models import artifact, frame_image, load_reflector, load_world_model
from mmpost.types import DataError, Message, Sample

PROMPT = "Move the white dot onto the grey dot. What are the next {k} actions?"
TRAIN_ROWS = ("initial_states", "demonstrations")


@TASKS.register("world_env")
class WorldEnvTask:
    """Options: `chunk` (actions per policy call), `n_bins`, `max_steps` (env steps per episode), `train_rows`,
    `demos_per_task`, `train_size`, `heldout_size`, `seed`, `image_size` (the frame is upscaled, nearest, to this
    many pixels for the VLA: 112 px = 8x8 patches of 14 px)."""

    name = "world_env"
    modality = "image"
    accuracy_reward = "episode_success"

    def __init__(self, *, seed: int = 0, chunk: int = 4, n_bins: int = DEFAULT_BINS, max_steps: int = 16,
                 train_rows: str = "initial_states", demos_per_task: int = 5, train_size: int = 64,
                 heldout_size: int = 32, image_size: int = 112) -> None:
        if train_rows not in TRAIN_ROWS:
            raise ValueError(f"world_env: train_rows must be one of {TRAIN_ROWS}, got {train_rows!r}")
        if chunk < 1 or max_steps < chunk:
            raise ValueError(f"world_env: need 1 <= chunk ({chunk}) <= max_steps ({max_steps})")
        self.seed, self.chunk, self.n_bins, self.train_rows = seed, chunk, n_bins, train_rows
        self.demos_per_task, self.image_size = demos_per_task, image_size
        self.config = WorldEnvConfig(max_steps=max_steps)
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.stats = ActionStats((-self.config.max_step,) * 2, (self.config.max_step,) * 2)
        self.default_rewards = ([{"name": "episode_return", "weight": 1.0}] if train_rows == "initial_states"
                                else [{"name": "robot_action_format", "weight": 1.0}])
        self._eval_env: GymEnv | None = None

    @property
    def max_policy_calls(self) -> int:
        return math.ceil(self.config.max_steps / self.chunk)

    # -- rows -------------------------------------------------------------------------------------------------
    def _row(self, row_id: str, task_index: int, position: np.ndarray, target: np.ndarray, actions: np.ndarray) -> Sample:
        bins = ActionTokenizer(self.stats, list(range(self.n_bins))).bins(actions)
        frame = render_frame(position, target, self.config)
        return {"id": row_id, "task_index": task_index, "position": [float(v) for v in position],
                "target": [float(v) for v in target], "images": [frame_image(frame, self.image_size)],
                "actions": actions.tolist(), "answer": "".join(f"<act_{i}>" for i in bins.reshape(-1))}

    def load(self, split: str, *, size: int | None = None) -> list[Sample]:
        split = canonical_split("world_env", split)
        if split == "train" and self.train_rows == "demonstrations":
            return self._demonstrations()
        size = self.sizes[split] if size is None else size
        rows = []
        for i in range(size):
            task_index = i % len(TASK_TARGETS)
            rng = random.Random(f"mmpost.world_env:{self.seed}:{split}:{i}")
            start, target = draw_start(rng, TASK_TARGETS[task_index], split)
            first = expert_steps(start, target, self.chunk, self.config)[0][1]
            rows.append(self._row(f"world_env-{split}-{self.seed}-{i:04d}", task_index, start, target, first))
        return rows

    def _demonstrations(self) -> list[Sample]:
        """Every policy call of `demos_per_task` expert episodes per task (World-Env: 5 demonstrations per task)."""
        rows = []
        for task_index, target in enumerate(TASK_TARGETS):
            for demo in range(self.demos_per_task):
                rng = random.Random(f"mmpost.world_env:{self.seed}:demo:{task_index}:{demo}")
                start, target_array = draw_start(rng, target, "train")
                for call, (position, actions) in enumerate(expert_steps(start, target_array, self.chunk, self.config)):
                    rows.append(self._row(f"world_env-demo-{self.seed}-{task_index}-{demo}-{call}", task_index, position,
                                          target_array, actions))
        return rows

    def prompt(self, sample: Sample) -> list[Message]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT.format(k=self.chunk)}]}]

    def target(self, sample: Sample) -> str:
        return sample["answer"]

    def allowed_token_ids(self, tokenizer) -> list[int]:
        """Only `<act_0>` … `<act_{n_bins−1}>` (and EOS) may be sampled (see `TokenPolicy`)."""
        return ActionTokenizer.added(self.stats, tokenizer, self.n_bins).allowed_token_ids()

    # -- the environment interface of `env_rollouts` ----------------------------------------------------------
    def initial_state(self, sample: Sample) -> dict[str, Any]:
        try:
            position, target = np.asarray(sample["position"], float), np.asarray(sample["target"], float)
        except KeyError as error:
            raise DataError(f"sample {sample.get('id', '?')!r}: world_env needs 'position' and 'target' ({error})") from None
        frame = torch.as_tensor(render_frame(position, target, self.config)).float()
        return {"position": position, "target": target, "frames": frame[None]}

    def observation_sample(self, sample: Sample, observation: dict[str, Any], call: int) -> Sample:
        """A prompt-ready sample of the current frame: `frame` from the world model, `image` from the GT env."""
        frame = observation["frame"] if "frame" in observation else observation["image"]
        return {"id": f"{sample['id']}-call{call}", "task_index": sample.get("task_index"), "target": sample.get("target"),
                "images": [frame_image(frame, self.image_size)]}

    def action_chunk(self, completion: str, sample: Sample) -> np.ndarray:
        """[chunk, 2] bin centres of the completion's first 2·chunk action tokens; missing steps are 'stay' (0)."""
        bins = [b for b in parse_action_bins(completion) if b < self.n_bins][: 2 * self.chunk]
        actions = np.zeros((self.chunk, 2))
        whole = len(bins) // 2
        if whole:
            actions[:whole] = bin_centres(np.array(bins[: 2 * whole]).reshape(whole, 2), self.stats, self.n_bins)
        return actions

    def episode_truth(self, sample: Sample, action_chunks: Sequence[np.ndarray], steps: int) -> bool:
        """Do the first `steps` of these action chunks, replayed from the sample's start in the ground truth, reach
        the target? (`env_rollouts` compares this with the world model's and reflector's verdict every step.)"""
        position, target = np.asarray(sample["position"], float), np.asarray(sample["target"], float)
        actions = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in action_chunks])[:steps]
        for action in actions:
            position = reach_step(position, action, self.config.reach)
            if distance(position, target) <= self.config.success_radius:
                return True
        return False

    # -- held-out success in the ground truth -----------------------------------------------------------------
    def ground_truth_env(self) -> GymEnv:
        return GymEnv(env_id=GYM_ID, env_kwargs={"config": self.config}, chunk=self.chunk)

    def evaluate_policy(self, policy: Any, backend: Any, rows: Sequence[dict], *, rank: int = 0, world: int = 1) -> tuple[float, float]:
        """(successes, episodes): one greedy episode per row in the GROUND-TRUTH env (never the world model)."""
        rows = list(rows)
        if not rows:
            return 0.0, 0.0
        if self._eval_env is None:
            self._eval_env = self.ground_truth_env()
        params = SamplingParams(n=1, greedy=True, max_new_tokens=2 * self.chunk + 1)
        episodes = run_episodes(policy, backend, self._eval_env, rows, params, group_size=1,
                                max_policy_calls=self.max_policy_calls, seed=self.seed)
        return float(sum(e.stats.success for e in episodes)), float(len(episodes))


# -- environments ------------------------------------------------------------------------------------------------
def _task(task: Any) -> WorldEnvTask:
    if not isinstance(task, WorldEnvTask):
        raise TypeError(f"this environment is the world_env task's; the run's task is {getattr(task, 'name', task)!r}")
    return task


@ENVIRONMENTS.register("world_env_ground_truth")
def ground_truth_environment(task: Any = None) -> GymEnv:
    """Direct RL reference: the gymnasium ReachEnv itself, through `GymEnv`."""
    return _task(task).ground_truth_env()


WORLD_MODEL_ZOO = ("world-env-reach-wm", "world-env-reach-wm-policy")  # the zoo entries that build a World-Env world model


@ENVIRONMENTS.register("world_env_world_model")
def world_model_environment(task: Any = None, *, world_model: str | None = None, reflector: str | None = None,
                            threshold: float | None = None, reward_mode: str = "relative", snap_frames: bool = False,
                            world_model_args: dict | None = None, reflector_args: dict | None = None,
                            world_model_zoo: str = "world-env-reach-wm") -> WorldModelEnv:
    """World-Env: the frozen world model (zoo entry `world_model_zoo`, default `artifacts/<world_model_zoo>`) and the
    reflector (default `artifacts/world-env-reflector`), each built from its zoo entry on first use (`*_args` go to
    the builder). `world_model_zoo: world-env-reach-wm-policy` is the world model trained on the policy's own
    episodes (tasks/world_env/coverage.py). The termination threshold is the reflector's own (picked on held-out
    frames when it was built) unless given. `snap_frames`: snap every imagined frame to the renderer's palette
    (`models.snap_to_palette`)."""
    task = _task(task)
    if world_model_zoo not in WORLD_MODEL_ZOO:
        raise ValueError(f"world_env_world_model: world_model_zoo must be one of {WORLD_MODEL_ZOO}, got {world_model_zoo!r}")
    generator = artifact(world_model_zoo, world_model, load_world_model, **(world_model_args or {}))
    if snap_frames:  # each imagined frame projected onto the renderer's 3 pixel values (models.snap_to_palette)
        generator = generator.snapped()
    scorer = artifact("world-env-reflector", reflector, load_reflector, **(reflector_args or {}))
    threshold = scorer.threshold if threshold is None else threshold
    return WorldModelEnv(generator, scorer, chunk=task.chunk, threshold=threshold, max_steps=task.config.max_steps,
                         reward_mode=reward_mode)


# -- the SFT-warm-started VLA ------------------------------------------------------------------------------------
# World-Env fine-tunes a pre-trained VLA (OpenVLA-OFT) on 5 demonstrations per task. The tiny VLA starts from random
# weights, and 5 demonstrations per task (about 60 policy calls) are too few for it to learn to see: after 80 SFT
# steps its first action pointed the right way in 43% of the action dimensions (chance 50%), ground-truth success
# 0.156, the same with rope_theta 1e6, 100 or 10. 40 demonstrations per task (about 500 calls) and 300 steps give a
# VLA that reads the frame (70% of dimensions right), succeeds 0.33 greedy and 0.84 in 8 tries (pass@8): room for RL.
WARMUP_STEPS, WARMUP_LR, WARMUP_DEMOS = 300, 1e-3, 40
# M-RoPE base of the tiny VLA's language model: 100 instead of the hub's 1e6, whose lowest frequencies (the height
# and width sections at head_dim 16) turn by 1e-4 rad per patch; see recipes/world_env.md, "Positional settings".
VLA_ROPE_THETA = 100.0


@MODEL_ZOO.register("tiny-vla-world-env")
def build_warm_vla(out_dir, *, seed: int = 0, steps: int = WARMUP_STEPS, lr: float = WARMUP_LR,
                   demos_per_task: int = WARMUP_DEMOS, chunk: int = 4, rope_theta: float = VLA_ROPE_THETA):
    """`tiny-vla-qwen2.5-vl` (M-RoPE base `rope_theta`) after SFT on `demos_per_task` expert demonstrations per
    task from training starts (World-Env uses 5 on a pre-trained VLA; see above)."""
    from mmpost.warmstart import sft_warm_start

    return sft_warm_start(out_dir, base_zoo="tiny-vla-qwen2.5-vl", task="world_env", seed=seed, steps=steps, lr=lr,
                          task_args={"train_rows": "demonstrations", "demos_per_task": demos_per_task, "chunk": chunk},
                          prompts_per_step=16, base_args={"rope_theta": rope_theta},
                          extra={"rollout": {"max_new_tokens": 2 * chunk + 1}, "train": {"threads": 1}})
