"""World-Env's two frozen models, trained on ground-truth data only, saved as safetensors + JSON.

- World model (zoo "world-env-reach-wm"): `mmpost.tasks.world_models.diffusion_wm.ActionConditionedFrameModel`
  (flow matching, one frame per chain, continuous actions divided by max_step), pre-trained on GT trajectories
  (`collect_trajectories`: expert and random moves). In the environment it runs as the deterministic Euler ODE
  from a fixed noise seed, conditioned on the current frame; a chunk of C actions is C chained frames.
- Reflector (zoo "world-env-reflector", World-Env's "VLM-guided instant reflector"): the tiny Qwen2.5-VL with a
  scalar value head (`mmpost.search.prm.ProcessRewardModel`), regressed (MSE) on GT frames to the success score
  s(p, g) in [0, 1]; its clamped output is the per-step reward and `score >= threshold` is its termination call.
  Half the training frames are drawn near the target, so success and failure frames are both common.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mmpost.registry import MODEL_ZOO
from mmpost.tasks.world_env.env import WorldEnvConfig, collect_trajectories, render_frame, success_score

WM_META = "world_env_wm.json"
REFLECTOR_META = "world_env_reflector.json"
REFLECTOR_PROMPT = "Is the white dot on the grey dot?"
WM_STEPS, WM_TRAJECTORIES, WM_LENGTH, WM_SAMPLING_STEPS = 300, 256, 8, 4
REFLECTOR_STEPS, REFLECTOR_EXAMPLES, REFLECTOR_LR = 800, 768, 5e-4


def frame_image(frame: Any, size: int | None = None):
    """A grayscale frame (uint8 or float in [0, 255], [S, S]) as the RGB PIL image a VLM reads, optionally
    upscaled (nearest) to `size` pixels so the VLM's 14-px patches see more than one cell per marker."""
    from PIL import Image

    array = np.asarray(frame.detach().cpu() if isinstance(frame, torch.Tensor) else frame, dtype=np.float64)
    image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    return image.resize((size, size), Image.NEAREST) if size else image


def default_artifacts_dir() -> Path:
    """`$MMPOST_ARTIFACTS` or `<repository>/artifacts` (git-ignored)."""
    return Path(os.environ.get("MMPOST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "artifacts")


# -- the world model ------------------------------------------------------------------------------------------
@MODEL_ZOO.register("world-env-reach-wm")
def build_world_model(out_dir, *, seed: int = 0, steps: int = WM_STEPS, trajectories: int = WM_TRAJECTORIES,
                      length: int = WM_LENGTH, sampling_steps: int = WM_SAMPLING_STEPS, lr: float = 1e-3,
                      batch_size: int = 64, channels: Sequence[int] = (32, 64)) -> Path:
    """Pre-train the action-conditioned frame generator on GT trajectories; save it with its metadata."""
    from mmpost.tasks.world_models.diffusion_wm import ActionConditionedFrameModel, pretrain_frame_model

    config = WorldEnvConfig()
    torch.manual_seed(seed)
    model = ActionConditionedFrameModel(frame_size=config.frame_size, num_frames=1, context_frames=1,
                                        action_kind="continuous", action_dim=2, block_out_channels=tuple(channels),
                                        norm_num_groups=min(8, channels[0]))
    data = collect_trajectories(trajectories, length, config, seed=seed)
    losses = pretrain_frame_model(model, {"frames": data["frames"], "actions": data["actions"] / config.max_step},
                                  steps=steps, lr=lr, seed=seed, batch_size=batch_size)
    out = Path(out_dir)
    model.save_pretrained(str(out))
    held = collect_trajectories(32, 4, config, seed=seed + 1000)
    meta = {"max_step": config.max_step, "frame_size": config.frame_size, "sampling_steps": sampling_steps,
            "noise_seed": 0, "train_steps": steps, "final_loss": float(np.mean(losses[-20:]))}
    generator = WorldModelGenerator(model, max_step=config.max_step, sampling_steps=sampling_steps)
    meta.update(world_model_error(generator, held))
    (out / WM_META).write_text(json.dumps(meta, indent=1))
    return out


class WorldModelGenerator:
    """The frozen world model as a `WorldModelEnv` generator: (context [B, 1, S, S] in [0, 255], actions [B, C, 2])
    -> frames [B, C, S, S] in [0, 255], deterministic (Euler ODE from noise seeded `noise_seed` on every call)."""

    def __init__(self, model: torch.nn.Module, *, max_step: float, sampling_steps: int = WM_SAMPLING_STEPS,
                 noise_seed: int = 0) -> None:
        self.model, self.max_step, self.sampling_steps, self.noise_seed = model.eval(), max_step, sampling_steps, noise_seed

    @torch.no_grad()
    def __call__(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from mmpost.tasks.world_models.diffusion_wm import frames_to_model, frames_to_uint8, sample_frames

        generator = torch.Generator().manual_seed(self.noise_seed)
        frames = sample_frames(self.model, frames_to_model(context.round().clamp(0, 255).to(torch.uint8)),
                               actions.float() / self.max_step, steps=self.sampling_steps, generator=generator)
        return frames_to_uint8(frames).float()


def load_world_model(folder: str | Path) -> WorldModelGenerator:
    from mmpost.tasks.world_models.diffusion_wm import ActionConditionedFrameModel

    folder = Path(folder)
    if not (folder / WM_META).is_file():
        raise FileNotFoundError(f"{folder}: not a World-Env world model folder (no {WM_META}); build it with the zoo "
                                "entry 'world-env-reach-wm'")
    meta = json.loads((folder / WM_META).read_text())
    model = ActionConditionedFrameModel.from_pretrained(str(folder))
    return WorldModelGenerator(model, max_step=float(meta["max_step"]), sampling_steps=int(meta["sampling_steps"]),
                               noise_seed=int(meta.get("noise_seed", 0)))


ROBOT_PIXEL_THRESHOLD = 200  # between the target (110) and the robot (255)


def robot_pixel(frames: np.ndarray) -> np.ndarray:
    """Centroid (row, col) of the bright (robot) pixels of frames [..., S, S]; NaN where none is bright."""
    frames = np.asarray(frames, dtype=np.float64)
    bright = frames > ROBOT_PIXEL_THRESHOLD
    rows, cols = np.mgrid[0 : frames.shape[-2], 0 : frames.shape[-1]]
    count = bright.sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(bright * rows).sum((-2, -1)) / count, (bright * cols).sum((-2, -1)) / count], -1)


def world_model_error(generator: WorldModelGenerator, trajectories: dict) -> dict[str, float]:
    """One-step accuracy on held-out GT transitions: mean |pixel| error, robot-centroid error in pixels, and the
    fraction of generated frames that lost the robot."""
    frames = torch.as_tensor(trajectories["frames"]).float()
    actions = torch.as_tensor(trajectories["actions"]).float()
    n, length = actions.shape[:2]
    context = frames[:, :-1].reshape(n * length, 1, *frames.shape[2:])
    predicted = generator(context, actions.reshape(n * length, 1, 2))[:, 0].numpy()
    truth = frames[:, 1:].reshape(n * length, *frames.shape[2:]).numpy()
    gap = np.linalg.norm(robot_pixel(predicted) - robot_pixel(truth), axis=-1)
    return {"one_step_pixel_mae": float(np.abs(predicted - truth).mean()),
            "one_step_robot_px_error": float(np.nanmean(gap)) if np.isfinite(gap).any() else float("nan"),
            "one_step_robot_lost": float(np.isnan(gap).mean())}


# -- the reflector --------------------------------------------------------------------------------------------
def reflector_examples(count: int, config: WorldEnvConfig, *, seed: int) -> tuple[list[np.ndarray], list[float]]:
    """GT frames and their success scores: half with the robot near the target (about half of those within the
    success radius), half anywhere."""
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for n in range(count):
        target = rng.uniform(0.1, 0.9, 2)
        if n % 2 == 0:
            position = np.clip(target + rng.uniform(-1.2, 1.2, 2) * config.success_radius, 0, 1)
        else:
            position = rng.uniform(0, 1, 2)
        frames.append(render_frame(position, target, config))
        labels.append(success_score(position, target, config))
    return frames, labels


class Reflector:
    """The reflector as a `WorldModelEnv` reward model: frames [B, C, S, S] -> scores [B, C] in [0, 1]."""

    def __init__(self, prm: torch.nn.Module, processor: Any, *, batch_size: int = 32, image_size: int = 112) -> None:
        from mmpost.modalities.image.adapter import ImageModality

        self.prm, self.processor, self.batch_size, self.image_size = prm.eval(), processor, batch_size, image_size
        self.modality = ImageModality()
        tokenizer = getattr(processor, "tokenizer", processor)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def inputs(self, frames: Sequence[Any]) -> dict[str, torch.Tensor]:
        from mmpost.policy import collate_prompts

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": REFLECTOR_PROMPT}]}]
        prompts = [self.modality.encode_prompt(self.processor, messages, {"id": "reflector", "images": [frame_image(f, self.image_size)]})
                   for f in frames]
        return collate_prompts(prompts, self.pad_id)

    @torch.no_grad()
    def scores(self, frames: Sequence[Any]) -> torch.Tensor:
        """[n] scores in [0, 1] for n frames."""
        out = []
        for start in range(0, len(frames), self.batch_size):
            out.append(self.prm(**self.inputs(frames[start : start + self.batch_size])).float().clamp(0.0, 1.0))
        return torch.cat(out)

    def __call__(self, frames: torch.Tensor, initial_states: Sequence[Any]) -> torch.Tensor:
        batch, chunk = frames.shape[:2]
        return self.scores(list(frames.reshape(batch * chunk, *frames.shape[2:]))).reshape(batch, chunk)


@MODEL_ZOO.register("world-env-reflector")
def build_reflector(out_dir, *, seed: int = 0, steps: int = REFLECTOR_STEPS, examples: int = REFLECTOR_EXAMPLES,
                    lr: float = REFLECTOR_LR, batch_size: int = 16, threshold: float = 0.9,
                    backbone: str | os.PathLike | None = None) -> Path:
    """Train the tiny-VLM reflector on GT success/failure frames; save backbone, head, processor and metrics.
    The backbone is a fresh `tiny-qwen2.5-vl` (seeded), or the VLM folder `backbone` when given."""
    from mmpost.model import load_processor
    from mmpost.search.prm import build_prm

    config = WorldEnvConfig()
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-reflector-") as scratch:
        base = Path(backbone) if backbone else MODEL_ZOO.get("tiny-qwen2.5-vl")(Path(scratch) / "base", seed=seed)
        processor = load_processor(str(base))
        prm = build_prm(base, seed=seed)
    reflector = Reflector(prm, processor)
    frames, labels = reflector_examples(examples, config, seed=seed)
    encoded = [reflector.inputs([f]) for f in frames]  # one prompt each; batches are re-collated below
    optimizer = torch.optim.AdamW(prm.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    prm.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(len(frames), (batch_size,), generator=generator).tolist()
        inputs = _stack_inputs([encoded[i] for i in index])
        loss = torch.nn.functional.mse_loss(prm(**inputs).float(), torch.tensor([labels[i] for i in index]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss))
    prm.eval()
    held_frames, held_labels = reflector_examples(128, config, seed=seed + 1000)
    predicted = reflector.scores(held_frames).numpy()
    truth = np.array(held_labels)
    out.mkdir(parents=True, exist_ok=True)
    prm.save(out)
    processor.save_pretrained(str(out))
    meta = {"threshold": threshold, "train_steps": steps, "image_size": reflector.image_size, "final_loss": float(np.mean(losses[-20:])),
            "heldout_mae": float(np.abs(predicted - truth).mean()),
            "heldout_success_accuracy": float(((predicted >= threshold) == (truth >= 1.0)).mean()),
            "heldout_success_fraction": float((truth >= 1.0).mean())}
    (out / REFLECTOR_META).write_text(json.dumps(meta, indent=1))
    return out


def _stack_inputs(encoded: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate single-prompt inputs of equal length (every reflector prompt has the same length)."""
    return {key: torch.cat([e[key] for e in encoded]) for key in encoded[0]}


def load_reflector(folder: str | Path) -> Reflector:
    from mmpost.model import load_processor
    from mmpost.search.prm import load_prm

    folder = Path(folder)
    if not (folder / REFLECTOR_META).is_file():
        raise FileNotFoundError(f"{folder}: not a World-Env reflector folder (no {REFLECTOR_META}); build it with the "
                                "zoo entry 'world-env-reflector'")
    meta = json.loads((folder / REFLECTOR_META).read_text())
    return Reflector(load_prm(folder), load_processor(str(folder)), image_size=meta.get("image_size", 112))


# -- artifacts built once and cached ----------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


def artifact(zoo: str, path: str | os.PathLike | None, loader, **build_args: Any):
    """`loader(folder)` of the zoo model at `path` (default `artifacts/<zoo>`), built there on first use."""
    folder = Path(path) if path else default_artifacts_dir() / zoo
    key = f"{zoo}:{folder.resolve()}"
    with _LOCK:
        if key not in _CACHE:
            if not any(folder.glob("world_env_*.json")):
                scratch = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
                MODEL_ZOO.get(zoo)(scratch, **build_args)
                try:
                    scratch.rename(folder)
                except OSError:  # another process got there first
                    shutil.rmtree(scratch, ignore_errors=True)
            _CACHE[key] = loader(folder)
        return _CACHE[key]
