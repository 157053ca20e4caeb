"""Task "rlir_ar": an autoregressive world model predicts the next F DotGrid frames from context frame(s) and the
ground-truth actions (RLIR's conditioning), as pixel tokens (modality "frames").

Splits come from `gridworld.collect_trajectories`, disjoint by trajectory hash: `load("train")` reads the split
named by `train_split` ("rl" for RLIR conditioning; the SFT warm start passes "world_model"), `load("heldout")`
the "heldout" split. Each sample: `context_frames` uint8 [C, H, W], `actions` [F], `target_frames` uint8 [F, H, W],
`answer` (the target frames as token text), `pixel_levels`.
"""
from __future__ import annotations

from mmpost.modalities.frames.processing import completion_token_names, pixel_token, separator_token
from mmpost.registry import TASKS
from mmpost.tasks.world_models.gridworld import ACTION_NAMES, SPLITS, conditioning_samples
from mmpost.types import Message, Sample


@TASKS.register("rlir_ar")
class RlirArTask:
    """Options: `frames` (F generated frames), `context` (C context frames), `train_split`, sizes, `seed`,
    `levels` (pixel grey levels, must match the tokenizer)."""

    name = "rlir_ar"
    modality = "frames"
    accuracy_reward = "idm_exact"

    def __init__(self, *, seed: int = 0, frames: int = 3, context: int = 1, train_split: str = "rl", train_size: int = 512,
                 heldout_size: int = 64, levels: int = 2) -> None:
        if frames < 1 or context < 1:
            raise ValueError(f"rlir_ar: frames and context must be >= 1, got frames={frames}, context={context}")
        if train_split not in SPLITS:
            raise ValueError(f"rlir_ar: train_split {train_split!r} is not one of {list(SPLITS)}")
        self.seed, self.frames, self.context, self.levels = seed, frames, context, levels
        self.train_split = train_split
        self.sizes = {"train": train_size, "heldout": heldout_size}
        self.default_rewards = [
            {"name": "idm_soft", "weight": 1.0},
            {"name": "idm_exact", "weight": 0.0},
            {"name": "idm_gold_exact", "weight": 0.0},
            {"name": "pixel_mae", "weight": 0.0},
        ]

    def load(self, split: str, *, size: int | None = None) -> list[Sample]:
        samples = conditioning_samples(self.name, split, train_split=self.train_split, sizes=self.sizes,
                                       context=self.context, frames=self.frames, seed=self.seed, size=size)
        for sample in samples:
            sample["pixel_levels"] = self.levels
            sample["answer"] = " ".join(completion_token_names(sample["target_frames"], self.levels))
        return samples

    def prompt(self, sample: Sample) -> list[Message]:
        """A readable description; the frames modality builds the token ids from the sample itself."""
        actions = ", ".join(ACTION_NAMES[int(a)] for a in sample["actions"])
        text = f"Given {len(sample['context_frames'])} context frame(s), generate the frames after: {actions}."
        return [{"role": "user", "content": [{"type": "text", "text": text}]}]

    def target(self, sample: Sample) -> str:
        return sample["answer"]

    def allowed_token_ids(self, tokenizer) -> list[int]:
        """Pixel tokens and the separators of frames 2..F: all a completion may hold (EOS is added by the engine)."""
        vocab = tokenizer.get_vocab()
        names = [pixel_token(v) for v in range(self.levels)] + [separator_token(j) for j in range(2, self.frames + 1)]
        missing = [n for n in names if n not in vocab]
        if missing:
            raise ValueError(f"rlir_ar: the tokenizer lacks {missing[:3]} (levels={self.levels}, frames={self.frames}); "
                             "build the model with the tiny-ar-world-model zoo entry using matching levels/max_frames")
        return sorted(vocab[n] for n in names)

