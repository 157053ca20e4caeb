"""Fast learning check for the audio GRPO family (R1-AQA, `recipes/audio_grpo.yaml`): a short run from a
seconds-sized warm start whose reward must rise.

The warm start is the shipped zoo entry `tiny-qwen2-audio-mcq` with a shorter SFT (it then writes
`<answer>option</answer>`); GRPO runs with R1-AQA's loss, advantage, KL and sampling from the recipe, at the CPU
preset's sizes. The reward is one fixed option on pitch questions ("second", one of the two choices), which a working
policy-gradient update through the audio path makes more likely within a dozen steps; the task's own accuracy moves
too slowly for a seconds-long test (the 3-seed held-out evidence is benchmarks/learning_audio.py). It fails if
learning broke: a flipped sign, a detached loss, a wrong advantage, a reward the engine never sees.
"""
from __future__ import annotations

import json

from conftest import REPO
from mmpost.config import load_config
from mmpost.registry import MODEL_ZOO, REWARDS
from mmpost.trainer import train

WARM_STEPS = 30  # SFT steps of the warm start (the shipped zoo entry takes 120): enough to write the answer tag
STEPS = 12


@REWARDS.register("test_learning_answers_second")
def answers_second(completions, samples, **_):
    return [1.0 if "<answer>second</answer>" in c else 0.0 for c in completions]


def test_audio_grpo_moves_the_policy_towards_reward(tmp_path):
    import mmpost.tasks.audio_mcq  # noqa: F401  (registers the zoo entry)

    clips = tmp_path / "clips"
    warm = MODEL_ZOO.get("tiny-qwen2-audio-mcq")(tmp_path / "warm", steps=WARM_STEPS, cache_dir=str(clips))
    out = tmp_path / "run"
    config = load_config(REPO / "recipes" / "audio_grpo.yaml", [
        f"model.path={warm}", "model.zoo=null", f"train.output_dir={out}", "train.threads=1", "train.progress=false",
        f"train.steps={STEPS}", "train.save_every=0", "data.prompts_per_step=4", "rollout.max_new_tokens=12",
        "optim.lr=2e-3", f"data.task_args.cache_dir={clips}", "data.task_args.kinds=[pitch]",
        "data.task_args.train_size=32", "eval.heldout=false"])
    config.rewards = [{"name": "test_learning_answers_second"}]
    train(config)
    reward = [json.loads(line)["reward/test_learning_answers_second"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Measured (seed 42, one thread): 0.18 over the first 3 steps -> 0.61 over the last 3; 66 s on the loaded 2-core machine.
    assert sum(reward[-3:]) / 3 > sum(reward[:3]) / 3 + 0.25, reward
