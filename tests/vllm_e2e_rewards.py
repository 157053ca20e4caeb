"""A reward for the vLLM end-to-end test (tests/test_vllm_multimodal.py), named as "vllm_e2e_rewards:distinct_characters".

A randomly initialised model never answers the shapes task, so its rewards are all 0 and GRPO's advantages, losses
and updates are all 0: the weights pushed into vLLM would never change. This reward differs between any two
random completions, so every step moves the policy and every push carries new weights. It measures nothing useful.
"""


def distinct_characters(completions, samples, **args):
    return [len(set(text)) / max(len(text), 1) for text in completions]
