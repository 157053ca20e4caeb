"""Environments: the WorldModelEnv contract on a fake generator/reward model (chunk shapes, termination at the
threshold, auto-reset, relative rewards summing to the final score), GymEnv on gymnasium envs, GenerationEnv, and
the env_rollouts source (episode ids, groups from one initial state)."""
import gymnasium
import numpy as np
import pytest
import torch

from mmpost.envs import EnvRollouts, GenerationEnv, GymEnv, WorldModelEnv
from mmpost.experience import StepContext
from mmpost.registry import ENVIRONMENTS, EXPERIENCE_SOURCES, REWARDS
from mmpost.rollout.base import GenerationResult, SamplingParams
from mmpost.types import Vocabulary


# A fake world: a frame is one number; the generator adds each action to the last frame, the reward model scores
# frame / 10 (the RLinf `base_fake_model` idea: interaction logic without a real model).
def add_actions(context, actions):
    return context[:, -1:, :] + torch.cumsum(actions, dim=1)


def tenth(frames, states):
    return frames[..., 0] / 10


def start(value):
    return {"frames": torch.tensor([[float(value)]])}


def test_registered_kinds():
    assert ENVIRONMENTS.get("gym") is GymEnv and ENVIRONMENTS.get("world_model") is WorldModelEnv
    assert ENVIRONMENTS.get("generation") is GenerationEnv and EXPERIENCE_SOURCES.get("env_rollouts") is EnvRollouts
    assert REWARDS.get("episode_return") and REWARDS.get("episode_success")


def test_world_model_chunk_shapes_and_relative_rewards_by_hand():
    env = WorldModelEnv(add_actions, tenth, chunk=4, threshold=0.95, max_steps=100)
    observations = env.reset([start(0), start(2), start(5)])
    assert len(observations) == 3 and observations[1]["frame"].tolist() == [2.0] and observations[1]["step"] == 0
    result = env.chunk_step(torch.ones(3, 4, 1))
    assert result.rewards.shape == result.terminated.shape == result.truncated.shape == (3, 4)
    # episode 1 starts at 2: scores 0.3, 0.4, 0.5, 0.6; s_0 = 0, so r = 0.3, 0.1, 0.1, 0.1
    assert result.rewards[1].tolist() == pytest.approx([0.3, 0.1, 0.1, 0.1])
    assert result.observations[1]["frame"].tolist() == [6.0] and result.observations[1]["step"] == 4
    assert not result.done.any()


def test_world_model_terminates_at_threshold_and_auto_resets():
    env = WorldModelEnv(add_actions, tenth, chunk=4, threshold=0.65, max_steps=100)
    env.reset([start(5), start(0)])
    result = env.chunk_step(torch.ones(2, 4, 1))
    # episode 0 scores 0.6, 0.7 (threshold 0.65) -> terminated at its second step; the other two actions are ignored
    assert result.terminated[0].tolist() == [False, True, False, False]
    assert result.rewards[0].tolist() == pytest.approx([0.6, 0.1, 0.0, 0.0])
    assert not result.terminated[1].any() and result.done.tolist() == [True, False]
    episode = result.infos[0]["episode"]
    assert episode.success and episode.length == 2
    assert episode.episode_return == pytest.approx(episode.score) == pytest.approx(0.7)  # rewards sum to the final score
    assert result.infos[0]["final_observation"]["frame"].tolist() == [7.0]
    assert result.observations[0]["frame"].tolist() == [5.0] and result.observations[0]["step"] == 0  # auto-reset
    again = env.chunk_step(torch.full((2, 4, 1), -1.0))
    assert again.rewards[0].tolist() == pytest.approx([0.4, -0.1, -0.1, -0.1])  # a fresh episode: s_0 = 0 again


def test_world_model_truncates_absolute_mode_and_window():
    seen = []

    def remember(context, actions):
        seen.append(context.clone())
        return add_actions(context, actions)

    env = WorldModelEnv(remember, tenth, chunk=2, threshold=2.0, max_steps=3, reward_mode="absolute",
                        context_frames=3, keep_first_frame=True)
    env.reset([{"frames": torch.tensor([[1.0], [2.0]])}])
    assert seen == [] and env.chunk_step(torch.ones(1, 2, 1)).rewards[0].tolist() == pytest.approx([0.3, 0.4])
    assert seen[0][0, :, 0].tolist() == [1.0, 1.0, 2.0]  # first frame + the last two (left-padded at the start)
    result = env.chunk_step(torch.ones(1, 2, 1))
    assert seen[1][0, :, 0].tolist() == [1.0, 3.0, 4.0]
    assert result.truncated[0].tolist() == [True, False] and not result.terminated.any()
    assert result.infos[0]["episode"].length == 3 and not result.infos[0]["episode"].success


def test_world_model_bad_input_is_named():
    env = WorldModelEnv(add_actions, tenth, chunk=4, threshold=0.9, max_steps=8)
    with pytest.raises(ValueError, match="initial state 0"):
        env.reset([{"no_frames": 1}])
    env.reset([start(0)])
    with pytest.raises(ValueError, match=r"\[1, 4, \.\.\.\]"):
        env.chunk_step(torch.ones(1, 3, 1))
    with pytest.raises(ValueError, match="reward_mode"):
        WorldModelEnv(add_actions, tenth, chunk=1, threshold=1, max_steps=1, reward_mode="shaped")


def test_gym_env_matches_stepping_gymnasium_by_hand():
    env = GymEnv(env_id="CartPole-v1", chunk=3)
    observations = env.reset([None, None], seed=7)
    reference = gymnasium.make("CartPole-v1")
    first, _ = reference.reset(seed=8)
    np.testing.assert_allclose(observations[1], first)
    result = env.chunk_step(np.ones((2, 3, 1)))
    for _ in range(3):
        expected, *_ = reference.step(1)
    np.testing.assert_allclose(result.observations[1], expected)
    assert result.rewards.tolist() == [[1.0] * 3] * 2


class Counter(gymnasium.Env):
    """Counts up by the action from options["initial_state"]; terminates at 3 with info success."""

    observation_space = gymnasium.spaces.Box(-100, 100, (1,))
    action_space = gymnasium.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.value = float((options or {}).get("initial_state", 0.0))
        return np.array([self.value]), {}

    def step(self, action):
        self.value += float(action[0])
        return np.array([self.value]), 1.0, self.value >= 3, False, {"success": self.value >= 3}


def test_gym_env_initial_states_termination_auto_reset_and_vector_envs():
    env = GymEnv(gymnasium.vector.SyncVectorEnv([Counter, Counter]), chunk=3, max_steps=5)
    env.reset([1.0, -5.0])
    result = env.chunk_step(np.ones((2, 3, 1)))
    assert result.terminated.tolist() == [[False, True, False], [False, False, False]]
    assert result.rewards.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    assert result.infos[0]["episode"].success and result.infos[0]["episode"].episode_return == 2.0
    assert result.observations[0].tolist() == [1.0] and result.infos[0]["final_observation"].tolist() == [3.0]
    result = env.chunk_step(np.zeros((2, 3, 1)))
    assert result.truncated[1].tolist() == [False, True, False]  # max_steps = 5 on top of the env's own limit
    with pytest.raises(ValueError, match="only 2 environment instances"):
        env.reset([0.0, 0.0, 0.0])


def test_generation_env_is_one_step():
    env = GenerationEnv(lambda states, actions: [s + a for s, a in zip(states, actions)],
                        lambda outputs, states: [float(o) for o in outputs], success_threshold=2.0)
    assert env.reset([1, 2]) == [1, 2]
    result = env.chunk_step([[0], [1]])
    assert result.rewards.tolist() == [[1.0], [3.0]] and result.terminated.all() and not result.truncated.any()
    assert [i["episode"].success for i in result.infos] == [False, True] and result.infos[1]["output"] == 3
    with pytest.raises(ValueError, match="one-step chunks"):
        env.chunk_step([[0, 1], [1]])


# -- the env_rollouts source on a fake policy ---------------------------------------------------------------------
class FakeTask:
    """Initial state = a number; the observation is the frame; a completion [k, EOS] adds k per step."""

    name = "fake"

    def initial_state(self, sample):
        return start(sample["x"])

    def observation_sample(self, sample, observation, call):
        return {"id": f"{sample['id']}-{call}", "x": float(observation["frame"][0])}

    def action_chunk(self, output, sample):
        return np.full((2, 1), float(output))


class FakePolicy:
    pad_token_id, eos_token_ids, task, tokenizer = 0, [9], FakeTask(), None
    vocabulary = Vocabulary(tokenizer=None, pad_token_id=0, eos_token_ids=(9,))

    def encode_prompts(self, samples):
        from mmpost.types import PromptEncoding

        return [PromptEncoding(input_ids=torch.tensor([1, 2])) for _ in samples]

    def decode(self, ids, mask):
        return [str(int(row[0])) for row in ids]


class FakeBackend:
    """Episode b of a call gets token (b % 3) + 1 (so the three members of a group move at different speeds)."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, samples, params):
        self.calls.append((len(prompts), params.n))
        ids = [[b % 3 + 1, 9] for b in range(len(prompts))]
        return GenerationResult(ids, [[-0.5, -0.1]] * len(prompts))


def test_env_rollouts_rows_have_episode_ids_and_groups_from_one_initial_state():
    ENVIRONMENTS.add("fake_counter", lambda **args: WorldModelEnv(add_actions, tenth, chunk=2, threshold=0.55, max_steps=5),
                     override=True)
    source = EnvRollouts(env="fake_counter", max_policy_calls=5)
    backend = FakeBackend()
    ctx = StepContext(FakePolicy(), backend, SamplingParams(n=3, max_new_tokens=2), 1, "episode_success", ["episode_return"])
    samples = [{"id": "a", "x": 0.0}, {"id": "b", "x": 5.0}]
    batch = source.collect(ctx, samples, FakePolicy().encode_prompts(samples))
    # every call is one sample per live episode (n = 1): 6 episodes at first
    assert backend.calls[0] == (6, 1)
    episodes = source.last_episodes
    assert [e.initial_index for e in episodes] == [0, 0, 0, 1, 1, 1]
    # By hand (token k = position in the call % 3 + 1, frame += k per step, success at frame >= 5.5): call 1 ends
    # episodes 2-5 (frames 6, 6, 7, 8); call 2 (k = 1, 2) ends episode 1; call 3 truncates episode 0 at step 5.
    assert [len(e.calls) for e in episodes] == [3, 2, 1, 1, 1, 1]
    assert [e.stats.success for e in episodes] == [False, True, True, True, True, True]
    assert len(batch) == sum(len(e.calls) for e in episodes) == 9
    assert batch.episode_ids.tolist() == [0, 0, 0, 1, 1, 2, 3, 4, 5]
    assert batch.group_ids.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    returns = REWARDS.get("episode_return")(batch.completions, [batch.samples[int(i)] for i in batch.prompt_index])
    assert returns == pytest.approx([0.5] * 3 + [0.6] * 2 + [0.6, 0.6, 0.7, 0.8])  # each episode's final score
    assert batch.sampling_logprobs[0].tolist() == pytest.approx([-0.5, -0.1])
    batch, metrics = source.after_rewards(ctx, batch)
    assert metrics["env/success_rate"] == pytest.approx(5 / 6) and metrics["env/episodes"] == 6


def test_episode_return_reward_names_the_sample_without_an_episode():
    from mmpost.types import DataError

    with pytest.raises(DataError, match="'q1'.*env_rollouts"):
        REWARDS.get("episode_return")(["x"], [{"id": "q1"}])
