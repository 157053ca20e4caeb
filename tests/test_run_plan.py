"""The run's decisions, made once (`mmpost.builder.RunPlan`): resolved without changing the config, logged in words,
read by every pass; one sharding test and one equal-forward-count helper."""
import dataclasses

import pytest
import torch

from mmpost.builder import resolve_logprob_layout
from mmpost.config import ConfigError, load_config
from mmpost.denoising import DenoisingPolicy
from mmpost.distributed import is_sharded, same_count_on_every_rank, sharding
from mmpost.logprobs import LogprobPlan
from mmpost.policy import TokenPolicy
from mmpost.update import StepWeights


def config(*overrides):
    return load_config(None, list(overrides))


def test_auto_layout_is_resolved_without_changing_the_config():
    cfg = config()
    assert cfg.algorithm.logprob_pass == "auto"
    assert resolve_logprob_layout(cfg, TokenPolicy) == ("shared_prefix", "auto")
    assert cfg.algorithm.logprob_pass == "auto"  # the decision lives in the plan, not in the config
    layout, why = resolve_logprob_layout(config("distributed.strategy=fsdp2"), TokenPolicy)
    assert layout == "padded" and "fsdp2" in why
    assert resolve_logprob_layout(config("algorithm.logprob_pass=packed"), TokenPolicy) == ("packed", "algorithm.logprob_pass")


def test_a_layout_sharding_cannot_run_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="algorithm.logprob_pass='shared_prefix'.*deepspeed_zero3"):
        resolve_logprob_layout(config("distributed.strategy=deepspeed_zero3", "algorithm.logprob_pass=shared_prefix"), TokenPolicy)


def test_a_policy_kind_with_one_layout_runs_it_and_says_why():
    layout, why = resolve_logprob_layout(config("algorithm.logprob_pass=packed", "model.policy=denoising"), DenoisingPolicy)
    assert layout == "shared_prefix" and "one layout" in why


def test_the_plan_names_every_layout_it_chose():
    plan = LogprobPlan.decide("packed", micro_batch_size=2, token_budget=64)
    assert plan.layout_for(with_grad=True) == "packed" and plan.layout_for(with_grad=True, full_distribution=True) == "padded"
    assert "full distribution" in plan.decision
    options = plan.pass_options(with_grad=False, full_distribution=False)
    assert options == {"temperature": 1.0, "layout": "packed", "token_budget": 64, "full_distribution": False}
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.layout = "padded"
    with pytest.raises(dataclasses.FrozenInstanceError):
        StepWeights().kl = 0.1
    with pytest.raises(ValueError, match="unknown layout 'ragged'"):
        LogprobPlan.decide("ragged", micro_batch_size=1)


def test_one_sharding_test_covers_fsdp2_and_zero3():
    model = torch.nn.Linear(2, 2)
    assert sharding(model) is None and not is_sharded(model)
    model.weight.ds_id = 0  # how DeepSpeed ZeRO-3 marks a partitioned parameter
    assert sharding(model) == "zero3" and is_sharded(model)


def test_one_process_runs_its_own_forward_count():
    assert same_count_on_every_rank(3) == 3 and same_count_on_every_rank(5, needed=False) == 5


def test_policy_kinds_declare_the_protocol_and_a_kind_that_does_not_is_refused():
    from mmpost.registry import POLICIES, Registry, RegistryError
    from mmpost.types import POLICY_KIND_MEMBERS

    assert POLICIES.get("token").computes_own_kl is False and POLICIES.get("denoising").computes_own_kl is True
    assert POLICIES.get("denoising").logprob_layouts == ("shared_prefix",)
    # Capabilities, not placeholders: the denoising kind emits no tokens, so it has a vocabulary of None and no
    # pad/EOS/tokenizer attributes at all.
    denoising = POLICIES.get("denoising")
    assert denoising.vocabulary is None
    assert not any(hasattr(denoising, name) for name in ("pad_token_id", "eos_token_ids", "suppressed_token_ids", "tokenizer"))
    assert POLICIES._required_attributes == POLICY_KIND_MEMBERS  # the registry checks exactly the protocol
    registry = Registry("policy", required_attributes=POLICY_KIND_MEMBERS)
    registry.add("token", TokenPolicy)  # `vocabulary` is a property over its per-instance token attributes

    class Partial:  # a plugin kind written before the protocol: no declared capabilities
        pad_token_id, eos_token_ids, suppressed_token_ids = 0, [1], []

        @classmethod
        def load_model(cls, model_config, path): ...

        @classmethod
        def load_processor(cls, path, trust_remote_code=False): ...

        def encode_prompts(self, samples): ...

        def logprobs(self, model, batch, rows, **options): ...

    with pytest.raises(RegistryError, match=r"lacks required attribute\(s\): \['logprob_layouts', 'computes_own_kl', 'vocabulary'\]"):
        registry.add("partial", Partial)
