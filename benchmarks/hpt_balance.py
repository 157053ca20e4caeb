"""How HPT's two loss terms weigh against each other on shapes, measured per step of a real `recipes/hpt.yaml` run.

    OMP_NUM_THREADS=1 python benchmarks/hpt_balance.py [--norm-constant 8192] [--steps 100] [--seed 0] [--out DIR]

Each step, before the real update, on the same mini-batches the update uses: the gradient norm of the RL term alone
(Σ_tokens -A·ratio / C, `token_sum_norm`) and of the SFT term alone (the SFT rows' token mean), the RL rows, RL
tokens and SFT rows per question kind. Writes DIR/balance.jsonl (one record per step) and prints a summary. The run
itself is the recipe's (the measurement only reads gradients; it zeroes them before the real update). Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def grad_norm(model, loss: torch.Tensor) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))


def measure(run, batch, step: int) -> dict:
    """RL-only and SFT-only gradient norms per mini-batch (the update's own split), and row counts per kind."""
    from mmpost.update import StepWeights, micro_batch_loss, normalisers

    plan, settings = run.plan, run.plan.loss
    rows = torch.nonzero(batch.keep).flatten()
    kinds = [str(batch.samples[int(i)].get("kind")) for i in batch.prompt_index]
    record: dict = {"step": step, "sft_rows": Counter(), "rl_rows": Counter(), "groups": Counter()}
    for i in rows.tolist():
        record["sft_rows" if bool(batch.is_sft[i]) else "rl_rows"][kinds[i]] += 1
    for index in batch.prompt_index.unique().tolist():
        record["groups"][str(batch.samples[index].get("kind"))] += 1
    record["rl_tokens"] = float(batch.completion_mask[rows][~batch.is_sft[rows]].sum())
    generator = torch.Generator().manual_seed(run.config.train.seed * 100003 + step)  # as trainer.update_policy
    order = rows[torch.randperm(len(rows), generator=generator)] if plan.mini_batches > 1 else rows
    rl_norms, sft_norms = [], []
    model = run.learner.model
    for mini in torch.tensor_split(order, plan.mini_batches):
        if len(mini) == 0:
            continue
        norms = normalisers(batch, mini)
        for weights, out in ((StepWeights(rl=1.0, sft=0.0), rl_norms), (StepWeights(rl=0.0, sft=1.0), sft_norms)):
            has = norms["rl_sequences"] > 0 if weights.rl else norms["sft_sequences"] > 0
            if not has:
                out.append(0.0)
                continue
            loss, _ = micro_batch_loss(model, run.learner.reference, batch, mini, settings, norms, weights)
            out.append(grad_norm(model, loss))
    record["rl_grad_norm"] = statistics.mean(rl_norms) if rl_norms else 0.0
    record["sft_grad_norm"] = statistics.mean(sft_norms) if sft_norms else 0.0
    record["norm_constant"] = settings.norm_constant
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in record.items()}


def summarise(records: list[dict]) -> dict:
    def mean(key, rs):
        return statistics.mean(r[key] for r in rs)

    def per_kind(key, rs):
        kinds = sorted({k for r in rs for k in r["groups"]})
        return {k: sum(r[key].get(k, 0) for r in rs) for k in kinds}

    out = {}
    for name, rs in (("first_20", records[:20]), ("last_20", records[-20:]), ("all", records)):
        with_sft = [r for r in rs if r["sft_grad_norm"] > 0]
        out[name] = {
            "steps": len(rs),
            "rl_grad_norm": mean("rl_grad_norm", rs),
            "sft_grad_norm_steps_with_sft": mean("sft_grad_norm", with_sft) if with_sft else 0.0,
            "steps_with_sft_rows": len(with_sft),
            "rl_tokens_per_step": mean("rl_tokens", rs),
            "sft_rows_per_kind": per_kind("sft_rows", rs),
            "rl_rows_per_kind": per_kind("rl_rows", rs),
            "groups_per_kind": per_kind("groups", rs),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--norm-constant", default="null", help="algorithm.norm_constant (null = the padded width)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/hpt-balance")
    args = parser.parse_args(argv)

    import mmpost.trainer as trainer
    from mmpost.config import load_config

    out = Path(args.out) / f"C{args.norm_constant}_seed{args.seed}"
    records: list[dict] = []
    real_update = trainer.update_policy

    def measured_update(run, batch, step, *, kl_coef):
        records.append(measure(run, batch, step))
        run.learner.model.zero_grad(set_to_none=True)
        return real_update(run, batch, step, kl_coef=kl_coef)

    trainer.update_policy = measured_update
    config = load_config(REPO / "recipes" / "hpt.yaml", [
        f"algorithm.norm_constant={args.norm_constant}", f"train.steps={args.steps}", f"train.seed={args.seed}",
        f"train.output_dir={out}", "train.threads=1", "train.progress=false", "train.overwrite_output_dir=true",
        "eval.heldout=false"])
    trainer.train(config)
    (out / "balance.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = summarise(records)
    (out / "balance_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
