"""LIBERO as the ground-truth environment (optional extra; GPU/EGL rendering and downloaded assets).

`make_libero_env(suite, task_id)` wraps LIBERO's `OffScreenRenderEnv` (old gym API, 7-D delta end-effector actions)
in a gymnasium adapter and that in `GymEnv`, so `env_rollouts` and ground-truth evaluation run on it unchanged.
An initial state is an index into the suite's fixed init states (`get_task_init_states`), which is how
SimpleVLA-RL and RLinf make a GRPO group start from one state. Observations: `image` (agent view, uint8 [H, W, 3],
flipped upright as OpenVLA does), `wrist_image`, `state` (end-effector pose + gripper), `instruction`.

Command (a GPU machine with LIBERO installed and its assets downloaded; not runnable offline here):

    pip install libero && libero-download-assets   # or the rlinf-libero / hf-libero redistributions
    python -c "from mmpost.tasks.world_env.libero import make_libero_env; env = make_libero_env('libero_spatial', 0); \
print(env.reset([0, 0])[0]['instruction'])"

Reading LIBERO's API (module paths, `OffScreenRenderEnv`, `set_init_state`) follows its README; it is not exercised
by the test suite here, which skips with the reason.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any

import gymnasium
import numpy as np

from mmpost.envs import GymEnv

INSTALL_HINT = "pip install libero (then libero-download-assets); see tasks/world_env/libero.py"


def libero_available() -> bool:
    return importlib.util.find_spec("libero") is not None


def unavailable_reason() -> str:
    return "the `libero` package is not importable: " + INSTALL_HINT


class LiberoGymEnv(gymnasium.Env):
    """One LIBERO task as a gymnasium env; reset(options={"initial_state": k}) starts from the suite's init state k."""

    def __init__(self, suite: str, task_id: int, *, resolution: int = 256, max_steps: int = 512, settle_steps: int = 10) -> None:
        if not libero_available():
            raise ImportError(unavailable_reason())
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs import OffScreenRenderEnv

        benchmarks = benchmark.get_benchmark_dict()
        if suite not in benchmarks:
            raise ValueError(f"LIBERO suite {suite!r} unknown; expected one of {sorted(benchmarks)}")
        self.suite = benchmarks[suite]()
        self.task = self.suite.get_task(task_id)
        self.task_id, self.max_steps, self.settle_steps = task_id, max_steps, settle_steps
        bddl = os.path.join(get_libero_path("bddl_files"), self.task.problem_folder, self.task.bddl_file)
        self.env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=resolution, camera_widths=resolution)
        self.init_states = self.suite.get_task_init_states(task_id)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self.observation_space = gymnasium.spaces.Dict({"image": gymnasium.spaces.Box(0, 255, (resolution, resolution, 3), np.uint8)})
        self._steps = 0

    def _observation(self, raw: dict[str, Any]) -> dict[str, Any]:
        state = np.concatenate([raw.get("robot0_eef_pos", np.zeros(3)), raw.get("robot0_eef_quat", np.zeros(4)),
                                raw.get("robot0_gripper_qpos", np.zeros(2))])
        return {"image": np.ascontiguousarray(raw["agentview_image"][::-1, ::-1]),
                "wrist_image": np.ascontiguousarray(raw.get("robot0_eye_in_hand_image", raw["agentview_image"])[::-1, ::-1]),
                "state": state, "instruction": self.task.language}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        index = int((options or {}).get("initial_state") or 0) % len(self.init_states)
        self.env.reset()
        raw = self.env.set_init_state(self.init_states[index])
        for _ in range(self.settle_steps):  # objects settle under gravity; a no-op action with the gripper open
            raw, _, _, _ = self.env.step([0.0] * 6 + [-1.0])
        self._steps = 0
        return self._observation(raw), {"success": False}

    def step(self, action):
        raw, reward, done, info = self.env.step(np.asarray(action, dtype=np.float64).tolist())
        self._steps += 1
        return self._observation(raw), float(reward), bool(done), self._steps >= self.max_steps, {**info, "success": bool(done)}


def make_libero_env(suite: str, task_id: int, *, count: int = 8, chunk: int = 8, **options: Any) -> GymEnv:
    """`count` LIBERO instances of one task behind `GymEnv` (chunk = the VLA's action chunk, 8 for OpenVLA-OFT)."""
    if not libero_available():
        raise ImportError(unavailable_reason())
    return GymEnv([LiberoGymEnv(suite, task_id, **options) for _ in range(count)], chunk=chunk)
