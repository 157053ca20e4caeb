"""Fast learning checks for RLIR, both world-model kinds (`recipes/rlir_ar.yaml`, `recipes/rlir_diffusion.yaml`).

Each runs the shipped recipe through `mmpost train` (the CLI entry, in process) from a seconds-sized warm start built
in the test, with the recipe's own loss, advantage, KL, sampling and its optimised IDM reward (the reward IDM of
`artifacts/`, as the recipe uses it). The target is reduced: ONE fixed conditioning row (a context frame and its
next action; `data.task_args.train_size=1`), whose generated frame the world model must make the IDM read as that
action. The IDM reward on the whole task needs about 60 steps, about 150 s here (benchmarks/results/learning_rlir.md),
so this does not show that RLIR generalises to new conditioning (that is the 3-seed held-out benchmark,
benchmarks/learning_rlir.py); it shows that the IDM reward reaches the update and the update moves the
world model's generations towards it. It fails if learning broke: a zero or wrong-signed advantage, a detached
log-probability, a reward the engine never sees. Run with training seeds 0-4, with `optim.lr=0` and with the reward's
weight negated (an advantage of the wrong sign): the numbers are in each test's docstring; every seed clears the
margin and the broken runs fail it.
"""
from __future__ import annotations

from mmpost.registry import MODEL_ZOO
from test_learning_families import _curve, _rise, train_recipe

FRAMES = 1  # one generated frame per sample: the recipe's 3 make the AR rollouts 3x longer


def run_recipe(recipe: str, warm, out, seed: int, *overrides: str) -> None:
    """The recipe on one fixed conditioning row."""
    train_recipe(recipe, warm, out, seed, "data.task_args.train_size=1", *overrides)


def test_rlir_ar_fits_one_conditioning_row(tmp_path):
    """The AR world model (tiny Llama over pixel tokens) after a 40-step SFT writes whole frames whose action the IDM
    reads at about chance (idm_soft ~0.13 on the fixed row). 16 GRPO steps at the recipe's lr 3e-4 and KL, 2 copies
    of the row x 8 samples per step. Measured (first 3 -> last 5 steps, this test): seeds 0-4 +0.42, +0.31, +0.32,
    +0.31, +0.40; with lr 0 +0.05, with the reward's weight negated -0.07. 11-14 CPU s."""
    from mmpost.warmstart import sft_warm_start

    warm = sft_warm_start(tmp_path / "warm", base_zoo="tiny-ar-world-model", task="rlir_ar", seed=0, steps=AR_WARM_STEPS,
                          lr=3e-3, prompts_per_step=8, progress=False,
                          task_args={"train_split": "world_model", "train_size": 160, "frames": FRAMES},
                          extra={"rollout": {"max_new_tokens": FRAMES * 65 + 1}, "train": {"threads": 1}})
    out = tmp_path / "run"
    run_recipe("rlir_ar", warm, out, AR_SEED, f"train.steps={AR_STEPS}", f"data.task_args.frames={FRAMES}",
               f"rollout.max_new_tokens={FRAMES * 65 + 1}", "data.prompts_per_step=2", "rollout.num_generations=8")
    reward = _curve(out, "reward/idm_soft")
    assert _rise(reward) > 0.2, reward


AR_WARM_STEPS, AR_STEPS, AR_SEED = 40, 16, 0


def test_rlir_diffusion_fits_one_conditioning_row(tmp_path):
    """The flow-matching world model after its zoo pre-training (80 steps, 4 denoising steps per chain here instead of
    8) generates a frame the IDM reads as the input action about a third of the time on the fixed row. 30 Flow-GRPO
    steps at the recipe's lr, clip, KL and mini-batches, 2 copies of the row x 8 chains. Measured (idm_exact, first
    3 -> last 5 steps, this test): seeds 0-4 +0.61, +0.68, +0.65, +0.46, +0.50; with lr 0 -0.12, with the reward's
    weight negated -0.10. At 20 steps seeds 0-4 gave +0.51, +0.59, +0.46, +0.35, +0.14 (seed 4 rises late), hence
    30. The gold pixel error to the true frame falls with it (0.10 -> 0.07 on seed 0). 12-17 CPU s."""
    import mmpost.tasks.world_models  # noqa: F401  (registers the zoo entry)

    warm = MODEL_ZOO.get("tiny-diffusion-world-model-sft")(tmp_path / "warm", num_steps=DIFFUSION_DENOISING_STEPS)
    out = tmp_path / "run"
    run_recipe("rlir_diffusion", warm, out, DIFFUSION_SEED, f"train.steps={DIFFUSION_STEPS}", "data.prompts_per_step=2",
               f"rollout.max_new_tokens={DIFFUSION_DENOISING_STEPS}")
    reward = _curve(out, "reward/idm_exact_frames")
    assert _rise(reward) > 0.2, reward


DIFFUSION_DENOISING_STEPS, DIFFUSION_STEPS, DIFFUSION_SEED = 4, 30, 0


# The whole-task IDM reward (recipes/rlir_diffusion.yaml as shipped, from its shipped warm start, 8 prompts × 8
# chains): 20 steps in 53 s left it where it started (first 3 steps 0.36, last 5 0.38; single steps 0.27-0.56), and
# with 4 denoising steps per chain 16 steps went 0.13 -> 0.17. Its benchmark rise (0.42 -> 0.64, first 10 -> last 10
# steps) takes 60 steps, about 150 s here; hence one fixed conditioning row above.
