"""World-Env's two frozen models, trained on ground-truth data only, saved as safetensors + JSON.

- World model (zoo "world-env-reach-wm"): `mmpost.tasks.world_models.diffusion_wm.ActionConditionedFrameModel`
  (flow matching, one frame per chain, continuous actions divided by max_step), pre-trained on GT trajectories
  (`collect_trajectories`: expert and random moves). In the environment it runs as the deterministic Euler ODE
  from a fixed noise seed, conditioned on the current frame; a chunk of C actions is C chained frames.
- Reflector (zoo "world-env-reflector", World-Env's "VLM-guided instant reflector"): the tiny Qwen2.5-VL with a
  scalar value head (`mmpost.search.prm.ProcessRewardModel`), regressed (MSE) on GT frames to the success score
  s(p, g) in [0, 1]; its clamped output is the per-step reward and `score >= threshold` is its termination call.
  Training frames are balanced (1/2 successes, 1/4 near misses, 1/4 anywhere); the threshold is the one with the
  best balanced accuracy on held-out frames, and the call is reported on other held-out frames (accuracy,
  balanced accuracy, AUC, precision/recall at the threshold). The VLM sees the frame with robot and target
  pixels also in their own channels (`reflector_image`), which the tiny ViT needs to tell them apart.
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
from mmpost.search.prm import roc_auc  # noqa: F401  (the reflector's AUC; also used by tests from here)
from mmpost.tasks.world_env.env import (ROBOT_VALUE, TARGET_VALUE, WorldEnvConfig, collect_trajectories, render_frame,
                                        success_score)

WM_META = "world_env_wm.json"
REFLECTOR_META = "world_env_reflector.json"
REFLECTOR_PROMPT = "Is the white dot on the grey dot?"
REFLECTOR_ROPE_THETA = 1_000_000.0  # the M-RoPE base the reflector was measured with (see build_reflector)
WM_STEPS, WM_TRAJECTORIES, WM_LENGTH, WM_SAMPLING_STEPS = 300, 256, 8, 4
REFLECTOR_STEPS, REFLECTOR_EXAMPLES, REFLECTOR_LR, REFLECTOR_IMAGE_SIZE, REFLECTOR_HELDOUT = 3000, 2048, 1e-3, 112, 256


def frame_image(frame: Any, size: int | None = None):
    """A grayscale frame (uint8 or float in [0, 255], [S, S]) as the RGB PIL image a VLM reads, optionally
    upscaled (nearest) to `size` pixels so the VLM's 14-px patches see more than one cell per marker."""
    from PIL import Image

    array = np.asarray(frame.detach().cpu() if isinstance(frame, torch.Tensor) else frame, dtype=np.float64)
    image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    return image.resize((size, size), Image.NEAREST) if size else image


ROBOT_PIXEL_THRESHOLD = 200  # between the target (110) and the robot (255)
TARGET_PIXEL_THRESHOLD = 55  # between the background (0) and the target (110)


def reflector_image(frame: Any, size: int | None = None):
    """The reflector's view of a grayscale frame [S, S]: RGB with R = the frame, G = 255 where a pixel is robot
    (> ROBOT_PIXEL_THRESHOLD), B = 255 where it is target (TARGET_PIXEL_THRESHOLD..ROBOT_PIXEL_THRESHOLD]; upscaled
    (nearest) to `size`. Why: success is "almost no target pixel left visible", and the tiny ViT's linear patch
    embedding cannot count grey pixels apart from white ones in one channel; in separate channels it can."""
    from PIL import Image

    array = np.asarray(frame.detach().cpu() if isinstance(frame, torch.Tensor) else frame, dtype=np.float64)
    robot = array > ROBOT_PIXEL_THRESHOLD
    target = (array > TARGET_PIXEL_THRESHOLD) & ~robot
    rgb = np.stack([np.clip(np.round(array), 0, 255), 255.0 * robot, 255.0 * target], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb, mode="RGB")
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
    -> frames [B, C, S, S] in [0, 255], deterministic: the Euler ODE (`sampling_steps` steps) from one noise per
    chunk position, seeded `noise_seed` and shared by every row, so a row's frames depend on its context and
    actions only (not on the batch it is in: the env can step a subset of its episodes and get the same frames)."""

    def __init__(self, model: torch.nn.Module, *, max_step: float, sampling_steps: int = WM_SAMPLING_STEPS,
                 noise_seed: int = 0, snap: bool = False) -> None:
        self.model, self.max_step, self.sampling_steps, self.noise_seed = model.eval(), max_step, sampling_steps, noise_seed
        self.snap = snap

    def snapped(self) -> "WorldModelGenerator":
        """The same model, each generated frame snapped to the renderer's palette (`snap_to_palette`) before it is
        returned and before the next frame of the chain is conditioned on it."""
        return WorldModelGenerator(self.model, max_step=self.max_step, sampling_steps=self.sampling_steps,
                                   noise_seed=self.noise_seed, snap=True)

    @torch.no_grad()
    def __call__(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from mmpost.algos.flow_sde import sde_step_with_logprob
        from mmpost.denoising import flow_match_sigmas
        from mmpost.tasks.world_models.diffusion_wm import frames_to_model, frames_to_uint8

        batch, chunk = actions.shape[:2]
        size = context.shape[-1]
        if self.model.config.num_frames != 1 or self.model.config.context_frames != 1:
            raise ValueError("WorldModelGenerator: the World-Env world model generates 1 frame from 1 context frame")
        noise = torch.randn((chunk, size, size), generator=torch.Generator().manual_seed(self.noise_seed))
        unused = torch.Generator().manual_seed(0)  # the ODE step draws noise it multiplies by 0: keep it off global RNG
        sigmas = flow_match_sigmas(self.sampling_steps)
        previous = frames_to_model(context.round().clamp(0, 255).to(torch.uint8))[:, -1:]
        scaled = actions.float() / self.max_step
        frames = []
        for c in range(chunk):  # each frame is conditioned on the one before: a chain, not a batch
            latent = noise[c].expand(batch, 1, size, size).clone()
            for k in range(self.sampling_steps):
                velocity = self.model(latent, float(sigmas[k]) * 1000, context=previous, actions=scaled[:, c : c + 1])
                latent = sde_step_with_logprob(velocity, latent, float(sigmas[k]), float(sigmas[k + 1]), noise_level=0.0,
                                               sigma_max=float(sigmas[1]), generator=unused)[0]
            if self.snap:
                latent = frames_to_model(snap_to_palette(frames_to_uint8(latent)))
            frames.append(latent)
            previous = latent
        return frames_to_uint8(torch.cat(frames, dim=1)).float()


PALETTE = (0, TARGET_VALUE, ROBOT_VALUE)


def snap_to_palette(frames: torch.Tensor) -> torch.Tensor:
    """Each pixel to the nearest of the renderer's three values (background 0, target 110, robot 255), as uint8.
    Why (session 6, a reconstruction, not World-Env's): chained world-model frames blur (the robot's bright pixels
    fade into grey halos), a look the GT-trained reflector reads as success; the renderer only ever draws these three
    values, so the projection removes the blur without any privileged state."""
    palette = torch.tensor(PALETTE, dtype=torch.float32)
    index = (torch.as_tensor(frames).float()[..., None] - palette).abs().argmin(-1)
    return palette[index].to(torch.uint8)


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
NEAR_MISS_FACTOR = 2.5  # near-miss negatives lie between 1 and 2.5 success radii from the target


def reflector_examples(count: int, config: WorldEnvConfig, *, seed: int) -> tuple[list[np.ndarray], list[float]]:
    """GT frames and their success scores s(p, g), balanced: 1/2 successes (robot uniform in the success disc),
    1/4 near misses (1 to NEAR_MISS_FACTOR radii away: the frames a reflector confuses with success) and 1/4
    anywhere. The label is the score of the clipped position, so a frame's success is `label >= 1`."""
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    radius = config.success_radius
    for n in range(count):
        target = rng.uniform(0.1, 0.9, 2)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        kind = n % 4
        if kind == 3:
            position = rng.uniform(0, 1, 2)
        else:
            gap = (radius * np.sqrt(rng.uniform(0.0, 1.0)) if kind < 2  # uniform over the success disc's area
                   else rng.uniform(1.02 * radius, NEAR_MISS_FACTOR * radius))  # 1.02: clearly outside
            position = np.clip(target + gap * np.array([np.cos(angle), np.sin(angle)]), 0, 1)
        frames.append(render_frame(position, target, config))
        labels.append(success_score(position, target, config))
    return frames, labels


def success_call_metrics(scores: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, float]:
    """How well `score >= threshold` calls success: accuracy, balanced accuracy (mean of the true-positive and
    true-negative rates, so always saying "no" scores 0.5), AUC of the raw scores, and the call's calibration at the
    threshold: precision (P(success | called success)), recall, and the called vs true success rates."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1 or not len(scores):
        raise ValueError(f"success_call_metrics: scores {scores.shape} and labels {positive.shape} must be equal 1-D, non-empty")
    called = scores >= threshold
    tpr = float(called[positive].mean()) if positive.any() else float("nan")
    tnr = float((~called[~positive]).mean()) if (~positive).any() else float("nan")
    return {"accuracy": float((called == positive).mean()), "balanced_accuracy": 0.5 * (tpr + tnr), "auc": roc_auc(scores, positive),
            "precision": float(positive[called].mean()) if called.any() else float("nan"), "recall": tpr,
            "called_success_rate": float(called.mean()), "true_success_rate": float(positive.mean())}


def pick_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The termination threshold with the best balanced accuracy on (held-out) scores: the midpoint between two
    adjacent distinct scores; ties go to the higher threshold (fewer false "success" calls end fewer episodes early)."""
    values = np.unique(np.asarray(scores, dtype=np.float64))
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    best = max(candidates, key=lambda t: (success_call_metrics(scores, positive, float(t))["balanced_accuracy"], t))
    return float(best)


REFLECTOR_VIEWS = {"gray": frame_image, "channels": reflector_image}  # how a frame is shown to the reflector


class Reflector:
    """The reflector as a `WorldModelEnv` reward model: frames [B, C, S, S] -> scores [B, C] in [0, 1];
    `threshold` is its termination call (picked on held-out frames when it was built)."""

    def __init__(self, prm: torch.nn.Module, processor: Any, *, batch_size: int = 64, image_size: int = 112,
                 threshold: float = 0.9, view: str = "channels") -> None:
        from mmpost.modalities.image.adapter import ImageModality

        if view not in REFLECTOR_VIEWS:
            raise ValueError(f"Reflector: view must be one of {sorted(REFLECTOR_VIEWS)}, got {view!r}")
        self.prm, self.processor, self.batch_size, self.image_size = prm.eval(), processor, batch_size, image_size
        self.threshold, self.view_name, self.view = threshold, view, REFLECTOR_VIEWS[view]
        self.modality = ImageModality()
        tokenizer = getattr(processor, "tokenizer", processor)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def inputs(self, frames: Sequence[Any]) -> dict[str, torch.Tensor]:
        from mmpost.types import collate_prompts

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": REFLECTOR_PROMPT}]}]
        prompts = [self.modality.encode_prompt(self.processor, messages, {"id": "reflector", "images": [self.view(f, self.image_size)]})
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


def evaluate_reflector(reflector: Reflector, count: int, config: WorldEnvConfig, *, seed: int,
                       threshold: float | None = None) -> dict[str, float]:
    """Held-out metrics of the reflector on `count` fresh balanced GT frames (`reflector_examples`, this seed):
    MAE of the score, and `success_call_metrics` at `threshold` (the reflector's own when None)."""
    frames, labels = reflector_examples(count, config, seed=seed)
    predicted, truth = reflector.scores(frames).numpy(), np.array(labels)
    metrics = success_call_metrics(predicted, truth >= 1.0, reflector.threshold if threshold is None else threshold)
    return {"mae": float(np.abs(predicted - truth).mean()), **metrics}


@MODEL_ZOO.register("world-env-reflector")
def build_reflector(out_dir, *, seed: int = 0, steps: int = REFLECTOR_STEPS, examples: int = REFLECTOR_EXAMPLES,
                    lr: float = REFLECTOR_LR, batch_size: int = 16, image_size: int = REFLECTOR_IMAGE_SIZE,
                    heldout: int = REFLECTOR_HELDOUT, view: str = "channels",
                    backbone: str | os.PathLike | None = None) -> Path:
    """Train the tiny-VLM reflector (MSE to s) on balanced GT success / near-miss / other frames; pick the
    termination threshold that maximises balanced accuracy on `heldout` selection frames, and report the call's
    metrics on another `heldout` test frames (seeds seed+1000 and seed+2000). Saves backbone, head, processor and
    metrics. The backbone is a fresh `tiny-qwen2.5-vl` (seeded), or the VLM folder `backbone` when given."""
    from mmpost.model import load_processor
    from mmpost.search.prm import build_prm

    config = WorldEnvConfig()
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmpost-reflector-") as scratch:
        # The reflector judges from colour channels, not positions; it was measured (balanced accuracy 0.918 on real
        # frames) on the hub's M-RoPE base, so it keeps that base rather than the tiny builder's default.
        base = Path(backbone) if backbone else MODEL_ZOO.get("tiny-qwen2.5-vl")(Path(scratch) / "base", seed=seed,
                                                                                 rope_theta=REFLECTOR_ROPE_THETA)
        processor = load_processor(str(base))
        prm = build_prm(base, seed=seed)
    reflector = Reflector(prm, processor, image_size=image_size, view=view)
    frames, labels = reflector_examples(examples, config, seed=seed)
    encoded = [reflector.inputs([f]) for f in frames]  # one prompt each; batches are re-collated below
    generator = torch.Generator().manual_seed(seed)

    def draw_batch():
        index = torch.randint(len(frames), (batch_size,), generator=generator).tolist()
        return _stack_inputs([encoded[i] for i in index]), torch.tensor([labels[i] for i in index])

    losses = fit_reflector(prm, draw_batch, steps=steps, lr=lr)
    select_frames, select_labels = reflector_examples(heldout, config, seed=seed + 1000)
    reflector.threshold = pick_threshold(reflector.scores(select_frames).numpy(), np.array(select_labels) >= 1.0)
    test = evaluate_reflector(reflector, heldout, config, seed=seed + 2000)
    out.mkdir(parents=True, exist_ok=True)
    prm.save(out)
    processor.save_pretrained(str(out))
    meta = {"threshold": reflector.threshold, "train_steps": steps, "train_examples": examples, "lr": lr,
            "image_size": image_size, "view": view, "final_loss": float(np.mean(losses[-20:])),
            **{f"heldout_{k}": v for k, v in test.items()}, "heldout_frames": heldout}
    (out / REFLECTOR_META).write_text(json.dumps(meta, indent=1))
    return out


def fit_reflector(prm, draw_batch, *, steps: int, lr: float) -> list[float]:
    """Regress the reflector's value head on the success score: `steps` batches from `draw_batch()` (stacked inputs,
    score tensor), MSE, AdamW with the step decaying linearly to 0, gradients clipped at norm 1. Leaves `prm` in eval
    mode; returns the per-step losses. Shared by the GT reflector and its world-model calibration."""
    optimizer = torch.optim.AdamW(prm.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 - k / max(steps, 1))  # linear decay
    prm.train()
    losses = []
    for _ in range(steps):
        inputs, labels = draw_batch()
        loss = torch.nn.functional.mse_loss(prm(**inputs).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    prm.eval()
    return losses


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
    return Reflector(load_prm(folder), load_processor(str(folder)), image_size=int(meta.get("image_size", 112)),
                     threshold=float(meta.get("threshold", 0.9)), view=meta.get("view", "gray"))


# -- artifacts built once and cached ----------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}
_LOCK = threading.RLock()  # re-entrant: a builder may load other artifacts (world-env-reflector-wm)


def artifact(zoo: str, path: str | os.PathLike | None, loader, **build_args: Any):
    """`loader(folder)` of the zoo model at `path` (default `artifacts/<zoo>`), built there on first use."""
    folder = Path(path) if path else default_artifacts_dir() / zoo
    key = f"{zoo}:{folder.resolve()}"
    # Loading draws from the global torch RNG (module initialisation before the weights are read), only on the first
    # call in a process (later ones hit the cache), so a second run in one process samples differently from the first.
    # Left so on purpose: every benchmark run is its own process, and forking the RNG here would change the committed
    # world-model rows' samples (measured: step 1 success 0.5625 -> 0.469 on seed 0). Tests clear `_CACHE` instead.
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
