"""Parity fixture from verl's, KlearReasoner's and HPT's own functions, run on fixed inputs.

Each reference repository is checked out (`git archive`) at a recorded commit into a temporary folder and
its real module is imported there, in a child process (all three packages are called `verl`):

- verl (volcengine/verl) `verl/trainer/ppo/core_algos.py`: `kl_penalty` (kl/k1, mse/k2, low_var_kl, k3),
  `agg_loss` (every mode, with and without the global batch info of data parallelism), the GRPO, RLOO
  (loop and vectorised) and REINFORCE++-baseline advantages, the policy losses `vanilla` (PPO clip with its
  dual clip), `gspo`, `sapo`, `cispo`, and `AdaptiveKLController`;
- KlearReasoner (Kwai-Klear/KlearReasoner) `compute_gppo_loss` at commit e0f7bb1 (dual clip fixed) and at
  6dc5bb9 (before the fix); at HEAD the function raises NameError (`only_higher` is undefined), recorded;
- HPT (undefinted/Unify-Post-Training) `compute_policy_loss` with `loss_remove_token_mean` /
  `loss_remove_clip`, `mix_src.mix_core_alg.compute_sft_pure_loss` combined as `mix_actor.update_policy`
  does for `offline_loss_type=sft`, and `compute_grpo_outcome_advantage(use_std=False)`.

Writes tests/fixtures/parity/verl_core_algos.json; tests/test_parity_verl.py compares mmpost against it
without importing any of these packages. Inputs and outputs are float64.

verl's own dependencies do not fit the project's venv (it needs transformers < 5 and tensordict <= 0.10), so
this runs from a separate venv that also sees the project's packages:

    python -m venv /tmp/verlenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/verlenv/lib/python3.11/site-packages/project.pth
    /tmp/verlenv/bin/python -m pip install "transformers<5" "tensordict>=0.8.0,<=0.10.0,!=0.9.0" omegaconf \\
        hydra-core ray codetiming dill pandas wandb
    /tmp/verlenv/bin/python benchmarks/parity_verl.py --verl-git DIR --klear-git DIR --hpt-git DIR

where each DIR is a git directory of the repository (the `fetch` tool's snapshot, or `git clone --bare`).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "parity" / "verl_core_algos.json"
COMMITS = {"verl": "b178a3cd5", "klear_fixed": "e0f7bb1", "klear_before_fix": "6dc5bb9", "klear_head": "3422f6d",
           "hpt": "17eae4e"}
N, T = 8, 6
LENGTHS = [6, 4, 5, 0, 6, 3, 1, 6]   # row 3 fully masked (verl's seq-mean modes leave it out of the count)
GROUP = [0, 0, 0, 0, 1, 1, 1, 1]


def inputs() -> dict:
    g = torch.Generator().manual_seed(20251206)
    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).double()
    logp = -(torch.rand(N, T, generator=g, dtype=torch.float64) * 2.0 + 0.05)
    # Ratios spread from ~0.3 to ~4: both clip sides and the dual clip (A < 0, ratio > 3) act.
    log_ratio = torch.empty(N, T, dtype=torch.float64).uniform_(-1.2, 1.4, generator=g)
    old = logp - log_ratio
    ref = logp + 0.2 * torch.randn(N, T, generator=g, dtype=torch.float64)
    ref[0, 1], ref[2, 0], ref[4, 3] = logp[0, 1] + 3.2, logp[2, 0] + 25.0, logp[4, 3] - 25.0  # k3 past the clamps
    loss_mat = torch.randn(N, T, generator=g, dtype=torch.float64)
    scores = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.25], dtype=torch.float64)
    advantages = torch.tensor([0.9, -1.3, 0.4, 1.1, -0.6, 2.0, -2.2, 0.3], dtype=torch.float64)
    sft_rows = [False, True, False, False, False, False, True, False]  # HPT: demonstration rows in a micro-batch
    lengths_rfpp = [6, 4, 5, 2, 6, 3, 1, 6]  # no empty row for verl's token whitening (it needs tokens)
    return {"mask": mask.tolist(), "logp": logp.tolist(), "old": old.tolist(), "ref": ref.tolist(),
            "loss_mat": loss_mat.tolist(), "scores": scores.tolist(), "advantages": advantages.tolist(),
            "group": GROUP, "sft_rows": sft_rows, "lengths_rfpp": lengths_rfpp,
            "kl_steps": [[0.02, 16], [0.005, 16], [0.2, 64], [0.011, 8]]}


def _tensors(data: dict):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in data.items()
         if k in ("mask", "logp", "old", "ref", "loss_mat", "scores", "advantages")}
    return t


def _value_and_grad(fn, logp: torch.Tensor):
    leaf = logp.clone().requires_grad_(True)
    value = fn(leaf)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return {"value": value.detach().tolist(), "grad": grad.tolist()}


def _token_rewards(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An outcome reward placed on each row's last valid token (verl's token_level_rewards)."""
    rewards = torch.zeros_like(mask)
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] = scores
    return rewards


# -- children: each imports one repository's `verl` ------------------------------------------------
def part_verl(data: dict) -> dict:
    import numpy as np
    from verl.trainer.ppo import core_algos as ca
    from verl.workers.config import FSDPActorConfig

    t = _tensors(data)
    mask, logp, old = t["mask"], t["logp"], t["old"]
    out: dict = {"kl": {}, "agg": {}, "advantages": {}, "policy_loss": {}}
    for mode in ("kl", "k1", "mse", "k2", "low_var_kl", "k3"):
        out["kl"][mode] = _value_and_grad(lambda lp, m=mode: ca.kl_penalty(lp, t["ref"], m), logp)
    modes = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
    for mode in modes:
        out["agg"][mode] = float(ca.agg_loss(t["loss_mat"], mask, mode))
    out["agg"]["seq-mean-token-sum-norm/loss_scale_factor=8192"] = float(
        ca.agg_loss(t["loss_mat"], mask, "seq-mean-token-sum-norm", loss_scale_factor=8192))
    # Data parallelism as verl's model-engine path passes it: each rank's half, global counts, dp_size 2.
    tokens, sequences = float(mask.sum()), float((mask.sum(-1) > 0).sum())
    out["agg"]["dp2_halves"] = {mode: [float(ca.agg_loss(t["loss_mat"][s], mask[s], mode, dp_size=2, batch_num_tokens=tokens,
                                                         global_batch_size=sequences))
                                       for s in (slice(0, 4), slice(4, 8))] for mode in modes}
    index = np.array(data["group"])
    rewards = _token_rewards(t["scores"], mask)
    for name, fn, kwargs in (
        ("grpo", ca.compute_grpo_outcome_advantage, {}),
        ("grpo_no_std", ca.compute_grpo_outcome_advantage, {"norm_adv_by_std_in_grpo": False}),
        ("grpo_vectorized", ca.compute_grpo_vectorized_outcome_advantage, {}),
        ("rloo", ca.compute_rloo_outcome_advantage, {}),
        ("rloo_vectorized", ca.compute_rloo_vectorized_outcome_advantage, {}),
    ):
        advantages, _ = fn(token_level_rewards=rewards.clone(), response_mask=mask, index=index, **kwargs)
        out["advantages"][name] = (advantages.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()  # constant per row
    rf_mask = (torch.arange(T)[None, :] < torch.tensor(data["lengths_rfpp"])[:, None]).double()
    advantages, _ = ca.compute_reinforce_plus_plus_baseline_outcome_advantage(
        token_level_rewards=_token_rewards(t["scores"], rf_mask), response_mask=rf_mask, index=index)
    out["advantages"]["reinforce_plus_plus_baseline"] = advantages[:, 0].tolist()
    out["advantages"]["reinforce_plus_plus_baseline_row_spread"] = float(
        ((advantages - advantages[:, :1]) * rf_mask).abs().max())  # 0: one value per row, broadcast to its tokens
    adv = t["advantages"][:, None].expand(N, T)
    for name, loss_mode, settings, agg in (
        ("vanilla_symmetric", "vanilla", dict(clip_ratio=0.2), "token-mean"),
        ("vanilla_clip_higher", "vanilla", dict(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28), "token-mean"),
        ("vanilla_clip_higher_c2", "vanilla", dict(clip_ratio=0.2, clip_ratio_high=0.28, clip_ratio_c=2.0), "token-mean"),
        ("gspo", "gspo", dict(clip_ratio=0.2, clip_ratio_low=3e-4, clip_ratio_high=4e-4), "seq-mean-token-mean"),
        ("sapo", "sapo", dict(clip_ratio=0.2, tau_pos=1.0, tau_neg=1.05), "seq-mean-token-mean"),
        ("cispo", "cispo", dict(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28), "token-mean"),
    ):
        config = FSDPActorConfig(strategy="fsdp", ppo_micro_batch_size_per_gpu=1, rollout_n=4, ppo_mini_batch_size=8,
                                 loss_agg_mode=agg, **settings)
        fn = ca.get_policy_loss_fn(loss_mode)
        out["policy_loss"][name] = {"settings": settings, "agg": agg, **_value_and_grad(
            lambda lp, f=fn, c=config, a=agg: f(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                                                 loss_agg_mode=a, config=c)[0], logp)}
    controller = ca.AdaptiveKLController(init_kl_coef=0.05, target_kl=0.01, horizon=100)
    coefs = []
    for kl, n in data["kl_steps"]:
        controller.update(current_kl=kl, n_steps=n)
        coefs.append(float(controller.value))
    out["adaptive_kl"] = {"init": 0.05, "target": 0.01, "horizon": 100, "coefs": coefs}
    return out


def part_klear(data: dict) -> dict:
    from verl.trainer.ppo import core_algos as ca

    t = _tensors(data)
    adv = t["advantages"][:, None].expand(N, T)
    try:
        result = _value_and_grad(lambda lp: ca.compute_gppo_loss(
            old_log_prob=t["old"], log_prob=lp, advantages=adv, response_mask=t["mask"], cliprange=0.2, cliprange_low=0.2,
            cliprange_high=0.28, clip_ratio_c=3.0, loss_agg_mode="token-mean")[0], t["logp"])
    except NameError as error:  # HEAD: `only_higher` is read but the parameter is `only_high`
        return {"error": f"NameError: {error}"}
    return {"gppo": result}


def part_hpt(data: dict) -> dict:
    import numpy as np
    from verl.mix_src.mix_core_alg import compute_sft_pure_loss
    from verl.trainer.ppo import core_algos as ca

    t = _tensors(data)
    mask, old = t["mask"], t["old"]
    sft = torch.tensor(data["sft_rows"])
    adv = t["advantages"][:, None].expand(N, T)
    out = {}
    for name, remove_token_mean, remove_clip in (("official", True, True), ("clipped_token_mean", False, False)):
        def micro_batch(lp, r=remove_token_mean, c=remove_clip):
            # mix_actor.update_policy, offline_loss_type == "sft": SFT rows' token mean + the policy loss of the rest.
            sft_loss = compute_sft_pure_loss(log_prob=lp[sft], eos_mask=mask[sft])
            pg_loss, _, _ = ca.compute_policy_loss(old_log_prob=old[~sft], log_prob=lp[~sft], advantages=adv[~sft],
                                                   eos_mask=mask[~sft], cliprange=0.2, loss_remove_token_mean=r,
                                                   loss_remove_clip=c)
            return pg_loss + sft_loss * 1.0  # sft_loss_coef 1.0 (train.sh); gradient_accumulation 64 / 64 = 1
        out[name] = _value_and_grad(micro_batch, t["logp"])
    rewards = _token_rewards(t["scores"], mask)
    advantages, _ = ca.compute_grpo_outcome_advantage(token_level_rewards=rewards, eos_mask=mask,
                                                      index=np.array(data["group"]), use_std=False)
    out["grpo_no_std"] = (advantages.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()
    return out


PARTS = {"verl": part_verl, "klear": part_klear, "hpt": part_hpt}


# -- parent ------------------------------------------------------------------------------------------
def checkout(git_dir: str, commit: str, folder: str, where: Path) -> Path:
    archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", commit, folder], check=True, capture_output=True).stdout
    tarfile.open(fileobj=BytesIO(archive)).extractall(where)
    return where


def run_child(part: str, src: Path, data_file: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--part", part, "--src", str(src), "--data", str(data_file)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{part} at {src} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def full_commit(git_dir: str, commit: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", commit], check=True, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verl-git")
    parser.add_argument("--klear-git")
    parser.add_argument("--hpt-git")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part:  # child: import this checkout's `verl` and print the results as one JSON line
        sys.path.insert(0, args.src)
        print(json.dumps(PARTS[args.part](json.loads(Path(args.data).read_text()))))
        return
    data = inputs()
    fixture = {"source": "benchmarks/parity_verl.py", "commits": {}, "inputs": data}
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "inputs.json"
        data_file.write_text(json.dumps(data))
        jobs = [("verl", args.verl_git, COMMITS["verl"], "verl", "verl"),
                ("klear_fixed", args.klear_git, COMMITS["klear_fixed"], "verl", "klear"),
                ("klear_before_fix", args.klear_git, COMMITS["klear_before_fix"], "verl", "klear"),
                ("klear_head", args.klear_git, COMMITS["klear_head"], "verl", "klear"),
                ("hpt", args.hpt_git, COMMITS["hpt"], "hpt/verl/verl", "hpt")]
        for key, git_dir, commit, folder, part in jobs:
            where = checkout(git_dir, commit, folder, Path(tmp) / key)
            src = where / "hpt" / "verl" if part == "hpt" else where
            fixture["commits"][key] = full_commit(git_dir, commit)
            fixture[key] = run_child(part, src, data_file)
            print(f"{key}: {fixture['commits'][key][:10]} ok")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(fixture, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
