"""The inverse dynamics model (IDM): (frame_t, frame_t+1) -> the action taken between them.

RLIR (Ye et al. 2025, arXiv 2509.23958) scores a world model by running an IDM over its generated frames and
comparing the recovered actions with the input actions; the paper uses the pre-trained VPT IDM on Minecraft.
Here it is a small CNN trained on ground-truth DotGrid transitions in seconds. Two heads:

- `discrete`: logits over the 5 actions (cross-entropy); RLIR's exact-match and our soft reward read it;
- `continuous`: the (d_row, d_col) displacement (mean squared error); the continuous-action reward reads it.

`idm_artifact(kind)` trains the reward IDM (split "idm") or the held-out gold IDM (split "idm_gold", another
seed) once into `artifacts/` and reuses it, so rewards never train anything in a step.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmpost.registry import MODEL_ZOO
from mmpost.tasks.world_models.gridworld import ACTION_DELTAS, GRID, NUM_ACTIONS, collect_trajectories

CONFIG_FILE = "idm_config.json"
WEIGHTS_FILE = "model.safetensors"
HEADS = ("discrete", "continuous")


@dataclass(frozen=True)
class IDMConfig:
    height: int = GRID
    width: int = GRID
    num_actions: int = NUM_ACTIONS
    channels: int = 16
    head: str = "discrete"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"IDM head must be one of {HEADS}, got {self.head!r}")


class InverseDynamicsModel(nn.Module):
    """Two 3x3 convolutions over the stacked pair, then a linear head.

    forward(pairs float [B, 2, H, W] in [0, 1]) -> logits [B, A] (discrete head) or displacement [B, 2] (continuous).
    """

    def __init__(self, config: IDMConfig = IDMConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(nn.Conv2d(2, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU())
        outputs = config.num_actions if config.head == "discrete" else 2
        self.head = nn.Linear(2 * c * config.height * config.width, outputs)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        if pairs.shape[1:] != (2, self.config.height, self.config.width):
            raise ValueError(f"IDM expects frame pairs [B, 2, {self.config.height}, {self.config.width}], got {list(pairs.shape)}")
        return self.head(self.features(pairs).flatten(1))


def frame_pairs(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 frames [B, F+1, H, W] -> consecutive pairs float [B*F, 2, H, W] scaled to [0, 1] (row b*F + t = (t, t+1))."""
    frames = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames).float() / 255.0
    if frames.dim() != 4 or frames.shape[1] < 2:
        raise ValueError(f"frames must be [B, F+1, H, W] with F >= 1, got {list(frames.shape)}")
    return torch.stack([frames[:, :-1], frames[:, 1:]], dim=2).flatten(0, 1)


@torch.no_grad()
def idm_action_probs(model: InverseDynamicsModel, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """p(a_t | frame_t, frame_t+1): frames [B, F+1, H, W] -> probabilities [B, F, A] (discrete head)."""
    if model.config.head != "discrete":
        raise ValueError("idm_action_probs needs an IDM with the discrete head")
    batch, steps = frames.shape[0], frames.shape[1] - 1
    logits = model(frame_pairs(frames))
    return logits.softmax(-1).reshape(batch, steps, -1)


@torch.no_grad()
def idm_displacements(model: InverseDynamicsModel, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Predicted (d_row, d_col) per transition: frames [B, F+1, H, W] -> [B, F, 2] (continuous head)."""
    if model.config.head != "continuous":
        raise ValueError("idm_displacements needs an IDM with the continuous head")
    return model(frame_pairs(frames)).reshape(frames.shape[0], frames.shape[1] - 1, 2)


def train_idm(data: dict, *, steps: int = 300, seed: int = 0, lr: float = 3e-3, head: str = "discrete",
              batch_size: int = 128, channels: int = 16) -> InverseDynamicsModel:
    """Fit an IDM on ground-truth trajectories {"frames" uint8 [n, L+1, H, W], "actions" int64 [n, L]} with Adam."""
    frames, actions = np.asarray(data["frames"]), np.asarray(data["actions"])
    if frames.ndim != 4 or actions.shape != frames.shape[:1] + (frames.shape[1] - 1,):
        raise ValueError(f"train_idm: frames [n, L+1, H, W] and actions [n, L] do not match: {frames.shape}, {actions.shape}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = InverseDynamicsModel(IDMConfig(height=frames.shape[2], width=frames.shape[3], channels=channels, head=head))
    pairs = frame_pairs(frames)
    labels = torch.as_tensor(actions).reshape(-1)
    targets = torch.as_tensor(ACTION_DELTAS, dtype=torch.float32)[labels]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        index = torch.randint(len(pairs), (min(batch_size, len(pairs)),), generator=generator)
        output = model(pairs[index])
        loss = F.cross_entropy(output, labels[index]) if head == "discrete" else F.mse_loss(output, targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def idm_accuracy(model: InverseDynamicsModel, data: dict) -> float:
    """Fraction of transitions whose argmax action (discrete) or rounded displacement (continuous) is right."""
    labels = torch.as_tensor(np.asarray(data["actions"])).reshape(-1)
    output = model(frame_pairs(data["frames"]))
    if model.config.head == "discrete":
        return float((output.argmax(-1) == labels).float().mean())
    deltas = torch.as_tensor(ACTION_DELTAS, dtype=torch.float32)
    nearest = torch.cdist(output, deltas).argmin(-1)
    return float((nearest == labels).float().mean())


def save_idm(model: InverseDynamicsModel, folder: str | os.PathLike) -> Path:
    """model.safetensors + idm_config.json in `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=1))
    return folder


def load_idm(folder: str | os.PathLike) -> InverseDynamicsModel:
    """The IDM saved by `save_idm`, in eval mode; a missing or malformed file raises naming it."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; an IDM folder holds {CONFIG_FILE} and {WEIGHTS_FILE} (see save_idm)")
    try:
        config = IDMConfig(**json.loads(config_path.read_text()))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_path}: not a valid IDM config ({error})") from None
    # Building the module draws initial weights from the global RNG; loading a reward model mid-run must not shift
    # the run's random stream (rollout noise), or a resumed run would differ from an uninterrupted one.
    with torch.random.fork_rng():
        model = InverseDynamicsModel(config)
    model.load_state_dict(load_file(str(weights_path)))
    return model.eval()


# -- the cached reward and gold IDMs -----------------------------------------------------------------
# kind -> (data split, seed). Different splits (disjoint trajectories) AND different seeds: the gold IDM is a
# second opinion that a world model exploiting the reward IDM's quirks does not fool in the same way.
IDM_KINDS = {"idm": ("idm", 0), "idm_gold": ("idm_gold", 1), "idm_continuous": ("idm", 2)}
IDM_TRAIN_TRAJECTORIES = 256
IDM_TRAIN_LENGTH = 8
IDM_TRAIN_STEPS = 200
_CACHE: dict[tuple[str, str], InverseDynamicsModel] = {}
_LOCK = threading.Lock()


def default_artifacts_dir() -> Path:
    """`$MMPOST_ARTIFACTS` or `<repository>/artifacts` (git-ignored)."""
    return Path(os.environ.get("MMPOST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "artifacts")


def build_idm(out_dir, *, kind: str = "idm", seed: int | None = None, steps: int = IDM_TRAIN_STEPS) -> Path:
    """Train the `kind` IDM on its own split and save it to `out_dir`."""
    if kind not in IDM_KINDS:
        raise ValueError(f"unknown IDM kind {kind!r}; expected one of {sorted(IDM_KINDS)}")
    split, default_seed = IDM_KINDS[kind]
    seed = default_seed if seed is None else seed
    data = collect_trajectories(IDM_TRAIN_TRAJECTORIES, IDM_TRAIN_LENGTH, seed=seed, split=split)
    head = "continuous" if kind == "idm_continuous" else "discrete"
    return save_idm(train_idm(data, steps=steps, seed=seed, head=head), out_dir)


@MODEL_ZOO.register("dotgrid-idm")
def build_reward_idm(out_dir, *, seed: int = 0) -> Path:
    """The reward IDM (split "idm")."""
    return build_idm(out_dir, kind="idm", seed=seed)


@MODEL_ZOO.register("dotgrid-idm-gold")
def build_gold_idm(out_dir, *, seed: int = 1) -> Path:
    """The held-out gold IDM (split "idm_gold"), logged but never optimised."""
    return build_idm(out_dir, kind="idm_gold", seed=seed)


@MODEL_ZOO.register("dotgrid-idm-continuous")
def build_continuous_idm(out_dir, *, seed: int = 2) -> Path:
    """The continuous-head IDM (displacements), for the continuous-action reward."""
    return build_idm(out_dir, kind="idm_continuous", seed=seed)


def idm_artifact(kind: str = "idm", path: str | os.PathLike | None = None) -> InverseDynamicsModel:
    """The `kind` IDM from `path` (default `artifacts/dotgrid-<kind>`), trained there on first use, cached in memory."""
    folder = Path(path) if path else default_artifacts_dir() / f"dotgrid-{kind.replace('_', '-')}"
    key = (kind, str(folder))
    with _LOCK:
        if key not in _CACHE:
            if not (folder / CONFIG_FILE).is_file():
                # Train into a scratch folder and rename, so a concurrent process never reads half a folder.
                scratch = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
                build_idm(scratch, kind=kind)
                try:
                    scratch.rename(folder)
                except OSError:  # another process got there first
                    import shutil

                    shutil.rmtree(scratch, ignore_errors=True)
            _CACHE[key] = load_idm(folder)
        return _CACHE[key]
