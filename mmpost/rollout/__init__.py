"""Rollout backends: batched generation with n samples per prompt behind one protocol (`mmpost.rollout.base`).

The backends (`hf`, `vllm`) register when the backend registry loads its built-ins. This package imports none of
its modules: code that needs only the protocol (`mmpost.experience`) then does not import the backends, and the
backends' log-prob passes (`mmpost.logprobs`) can use the rollout batch without an import cycle.
"""
