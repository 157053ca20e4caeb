"""Parity fixture from TRL's own GRPO code: loss, advantages and d loss / d log-prob on fixed batches.

Runs TRL 1.16's `GRPOTrainer._compute_loss` (the real method, called with a minimal stand-in trainer
object whose `_get_per_token_logps_and_entropies` returns fixed log-probs) and TRL's advantage code
(the block of `GRPOTrainer._generate_and_score_completions` from `unscorable_mask = ...` to
`advantages = torch.nan_to_num(...)`, taken from TRL's installed source at run time and executed on
fixed rewards; nothing of it is copied into this repository) for every loss type mmpost offers an
equivalent of x epsilon/epsilon_high x delta x beta (with and without `use_bias_correction_kl`, TRL's
default KL-times-ratio weighting) x scale_rewards x importance_sampling_level, on four batches:

- `ordinary`: on-policy (old log-probs = the current ones, ratio 1), reference near the policy;
- `off_policy`: old log-probs 0.3 nats away (ratios outside the clip range), so clipping acts;
- `far_reference`: a reference far from the policy on some tokens (k3 > 10), where TRL's unclamped k3
  and verl's clamped low_var_kl part;
- `all_none`: two completions every reward function returned None for (and some partial Nones).

Writes tests/fixtures/parity/trl_grpo.json.gz (gzip-compressed JSON); tests/test_parity_trl.py compares mmpost's training path
(`compute_advantages` -> `LossSettings` -> `micro_batch_loss`) against it to 1e-6 without importing TRL.

    pip install -e .[bench]            # trl==1.16
    python benchmarks/parity_trl.py    # ~20 s on one CPU thread

TRL loss types without an mmpost equivalent are not run: `vespo` (gamma-weighted sequence loss).
"""
from __future__ import annotations

import argparse
import gzip
import inspect
import warnings
import itertools
import json
import tempfile
import textwrap
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import torch

B, T, G = 8, 5, 4                      # rows, completion width, group size (2 groups)
REWARD_WEIGHTS = [1.0, 0.5]            # two reward functions
MAX_COMPLETION_LENGTH = 7              # > T, so dr_grpo's constant differs from the padded width
LENGTHS = [5, 3, 4, 1, 5, 2, 4, 5]
CLIP_FAMILY = ["grpo", "bnpo", "dr_grpo", "dapo", "luspo"]
EPSILONS = [(0.2, None), (0.2, 0.28)]  # (epsilon, epsilon_high); None = symmetric
DELTAS = [None, 2.0]                   # TRL's two-sided clipping bound (> 1 + epsilon_high)
BETAS = [0.0, 0.04]
SCALES = ["group", "batch", "none"]
LEVELS = ["token", "sequence"]
CISPO_EPSILON_HIGH = [5.0, 1.28]       # cispo's epsilon_high is an upper bound on the ratio itself
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "parity" / "trl_grpo.json.gz"


def batches() -> dict[str, dict[str, torch.Tensor]]:
    """The four fixed batches (float64). Rewards [B, 2] hold NaN where a reward function returned None."""
    g = torch.Generator().manual_seed(1234)
    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).double()
    logp = -(torch.rand(B, T, generator=g, dtype=torch.float64) * 2.0 + 0.05)
    near_ref = logp + 0.1 * torch.randn(B, T, generator=g, dtype=torch.float64)
    stale = logp + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    rewards = torch.tensor([[1, 0.5], [0, 1], [1, 1], [0, 0], [1, 0], [0, 0.5], [0, 0], [1, 1]], dtype=torch.float64)
    far = near_ref.clone()
    far[0, 1] = logp[0, 1] + 3.2   # k3 = e^3.2 - 4.2 = 20.3
    far[2, 0] = logp[2, 0] + 2.8   # 12.6
    far[4, 3] = logp[4, 3] + 4.0   # 49.6
    far[7, 2] = logp[7, 2] + 2.6   # 9.9 (just under the clamp)
    none = rewards.clone()
    none[1] = float("nan")          # every reward None: unscorable
    none[6] = float("nan")
    none[3, 1] = float("nan")       # one reward None: the other still counts
    none[5, 0] = float("nan")
    return {
        "ordinary": dict(logp=logp, old=None, ref=near_ref, mask=mask, rewards=rewards),
        "off_policy": dict(logp=logp, old=stale, ref=near_ref, mask=mask, rewards=rewards),
        "far_reference": dict(logp=logp, old=stale, ref=far, mask=mask, rewards=rewards),
        "all_none": dict(logp=logp, old=stale, ref=near_ref, mask=mask, rewards=none),
    }


def kl_settings() -> list[tuple[float, bool]]:
    """(beta, use_bias_correction_kl): the KL ratio weighting only matters where beta > 0 (TRL's default is True)."""
    return [(beta, bias) for beta in BETAS for bias in ((True, False) if beta else (True,))]


def configs() -> list[dict]:
    out = []
    for loss_type, (eps, eps_high), delta, (beta, bias), scale, level in itertools.product(
            CLIP_FAMILY, EPSILONS, DELTAS, kl_settings(), SCALES, LEVELS):
        out.append(dict(loss_type=loss_type, epsilon=eps, epsilon_high=eps_high, delta=delta, beta=beta,
                        use_bias_correction_kl=bias, scale_rewards=scale, importance_sampling_level=level))
    for (beta, bias), scale in itertools.product(kl_settings(), SCALES):
        out.append(dict(loss_type="sapo", epsilon=0.2, epsilon_high=None, delta=None, beta=beta,
                        use_bias_correction_kl=bias, scale_rewards=scale, importance_sampling_level="token"))
        for eps_high in CISPO_EPSILON_HIGH:
            out.append(dict(loss_type="cispo", epsilon=0.2, epsilon_high=eps_high, delta=None, beta=beta,
                            use_bias_correction_kl=bias, scale_rewards=scale, importance_sampling_level="token"))
    return out


def rounded(value):
    """10 significant digits: far below the 1e-6 the test checks, and a third of the file size."""
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return float(f"{value:.10g}")


# -- TRL's advantage code --------------------------------------------------------------------------
def trl_advantage_block() -> str:
    """TRL's own advantage lines, read from the installed GRPOTrainer at run time."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    start = source.index("unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)")
    end_marker = "advantages = torch.nan_to_num(advantages, nan=0.0)"
    end = source.index(end_marker) + len(end_marker)
    start = source.rindex("\n", 0, start) + 1
    return textwrap.dedent(source[start:end])


def trl_advantages(block: str, rewards_per_func: torch.Tensor, scale: str) -> torch.Tensor:
    from trl.trainer.utils import nanstd

    stand_in = SimpleNamespace(multi_objective_aggregation="sum_then_normalize", scale_rewards=scale,
                               reward_weights=torch.tensor(REWARD_WEIGHTS, dtype=torch.float64))
    scope = {"torch": torch, "nanstd": nanstd, "self": stand_in, "rewards_per_func": rewards_per_func.clone(),
             "num_generations": G, "device": "cpu"}
    exec(block, scope)  # noqa: S102 - TRL's own code, from the installed package
    return scope["advantages"]


# -- TRL's loss --------------------------------------------------------------------------------------
class _Accelerator:
    num_processes = 1
    sync_gradients = True

    def gather(self, tensor):
        return tensor

    def reduce(self, tensor, reduction="sum"):
        return tensor


def trl_loss(config: dict, batch: dict, advantages: torch.Tensor) -> tuple[float, list[list[float]]]:
    """TRL's `_compute_loss` on one micro-batch holding the whole batch (gradient accumulation 1)."""
    from trl import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(output_dir=tmp, report_to=[], bf16=False, max_completion_length=MAX_COMPLETION_LENGTH,
                          num_generations=G, per_device_train_batch_size=B, **config)
    logp = batch["logp"].clone().requires_grad_(True)
    stand_in = SimpleNamespace(
        args=args, loss_type=args.loss_type, beta=args.beta, epsilon_low=args.epsilon,
        epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        importance_sampling_level=args.importance_sampling_level, top_entropy_quantile=args.top_entropy_quantile,
        off_policy_mask_threshold=getattr(args, "off_policy_mask_threshold", None), use_vllm=False,
        vllm_importance_sampling_correction=False, aux_loss_enabled=False, _entropy_bonus_enabled=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        max_completion_length=MAX_COMPLETION_LENGTH, accelerator=_Accelerator(),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        get_high_entropy_mask=GRPOTrainer.get_high_entropy_mask, get_off_policy_mask=GRPOTrainer.get_off_policy_mask,
        get_gamma_weights=GRPOTrainer.get_gamma_weights,
    )
    mask = batch["mask"]
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
        "advantages": advantages, "num_items_in_batch": mask.sum(),
    }
    if batch["old"] is not None:
        inputs["old_per_token_logps"] = batch["old"]
    if args.beta != 0.0:
        inputs["ref_per_token_logps"] = batch["ref"]
    loss = GRPOTrainer._compute_loss(stand_in, None, inputs)
    (grad,) = torch.autograd.grad(loss, logp)
    return rounded(float(loss.detach())), rounded(grad.tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    import trl

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    block = trl_advantage_block()
    data = batches()
    fixture = {
        "source": f"trl {trl.__version__}: GRPOTrainer._compute_loss and the advantage block of "
                  "_generate_and_score_completions, run by benchmarks/parity_trl.py",
        "shape": {"rows": B, "width": T, "group_size": G, "reward_weights": REWARD_WEIGHTS,
                  "max_completion_length": MAX_COMPLETION_LENGTH, "advantage_eps": 1e-4},
        "batches": {}, "advantages": {}, "cases": [],
    }
    for name, batch in data.items():
        fixture["batches"][name] = {k: (None if v is None else v.tolist()) for k, v in batch.items()}
        fixture["advantages"][name] = {s: rounded(trl_advantages(block, batch["rewards"], s).tolist()) for s in SCALES}
    for config in configs():
        for name, batch in data.items():
            advantages = torch.tensor(fixture["advantages"][name][config["scale_rewards"]], dtype=torch.float64)
            loss, grad = trl_loss(config, batch, advantages)
            fixture["cases"].append({"batch": name, "config": config, "loss": loss, "grad": grad})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # mtime 0: the same numbers give the same bytes.
    Path(args.out).write_bytes(gzip.compress(json.dumps(fixture, separators=(",", ":")).encode(), mtime=0))
    print(f"wrote {len(fixture['cases'])} cases ({len(configs())} configs x {len(data)} batches) to {args.out}")


if __name__ == "__main__":
    main()
