"""World-Env: where the learned environment's verdict parts from the truth, per step, on the policy's OWN episodes.

    python benchmarks/world_env_diagnosis.py                         # the warm start on 16 training starts x 8
    python benchmarks/world_env_diagnosis.py --policy runs/.../model --world-model artifacts/X --reflector artifacts/Y

The policy (default the cached warm start `tiny-vla-world-env`) samples episodes at the recipe's temperature in
the world model, exactly as in training (`run_episodes`, the task's prompts and action chunks), except that the
reflector never ends an episode (threshold above 1): every episode runs all `max_steps` steps, so every step's
imagined frame and reflector score exist. The same actions are then replayed from the same start in the ground
truth. Per env step t (1..max_steps):

- drift: the imagined robot's centroid (`robot_pixel`) minus the true robot's pixel centre, in pixels;
- the imagined frame "looks" successful: its robot centroid within the success radius (in pixels) of the target;
- the reflector's call `score >= threshold` on the imagined frame, against the true success at that step:
  false-positive rate (called, truly not), true-positive rate, and the same call on the GT frame of that step;
- the episode-level verdict as training sees it: the first step the reflector calls success ends the episode; it
  agrees with the truth if the replayed actions up to that step reach the target (or, if never called, never do);
  and the same verdict from a perfect reader of the imagined frames (`reader_*`: the imagined robot within the
  success radius), the bound the world model's drift alone sets.

Writes benchmarks/results/<name>.{md,json}. Only training starts are used (never held-out ones).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def imagine(policy_dir: str, starts: int, group: int, *, world_model: str | None, reflector: str | None,
            seed: int = 0, temperature: float | None = None, snap: bool = False) -> dict:
    """Episodes of the policy in the world model (no termination) from train rows 0..starts-1, their GT replay, and
    the reflector's scores on the imagined frames and on the GT frames of the same states."""
    from mmpost.tasks.world_env.calibration import policy_episodes
    from mmpost.tasks.world_env.env import pixel_centre
    from mmpost.tasks.world_env.models import artifact, load_reflector, load_world_model

    torch.set_num_threads(1)
    started = time.process_time()
    generator = artifact("world-env-reach-wm", world_model, load_world_model)
    generator = generator.snapped() if snap else generator
    scorer = artifact("world-env-reflector", reflector, load_reflector)
    data = policy_episodes(policy_dir, 0, starts, group, generator=generator, seed=seed, temperature=temperature)
    frames = data["frames"]
    count, steps = frames.shape[:2]
    flat = lambda x: list(x.reshape(-1, *frames.shape[2:]))  # noqa: E731
    data["scores"] = scorer.scores(flat(frames)).numpy().reshape(count, steps)
    data["gt_scores"] = scorer.scores(flat(data["gt_frames"])).numpy().reshape(count, steps)
    from mmpost.tasks.world_env.env import WorldEnvConfig

    data.update(threshold=float(scorer.threshold), config=WorldEnvConfig(), pixel_centre=pixel_centre, group=group,
                cpu_seconds=time.process_time() - started)
    return data


def per_step_table(data: dict, threshold: float | None = None) -> tuple[list[dict], dict]:
    """Per-step drift and call rates, and the episode-level verdict against the truth (module docstring)."""
    from mmpost.tasks.world_env.models import robot_pixel

    cfg, frames = data["config"], data["frames"]
    imagined_target, true_target = target_pixels(frames), target_pixels(data["gt_frames"])
    threshold = data["threshold"] if threshold is None else threshold
    count, steps = frames.shape[:2]
    imagined_px = robot_pixel(frames)  # [B, T, 2]
    true_px = np.array([[data["pixel_centre"](p, cfg) for p in row] for row in data["true_pos"]])
    target_px = np.array([data["pixel_centre"](g, cfg) for g in data["targets"]])
    span = cfg.frame_size - 1 - 2 * cfg.marker_radius_px
    radius_px = cfg.success_radius * span
    drift = np.linalg.norm(imagined_px - true_px, axis=-1)
    looks = np.linalg.norm(imagined_px - target_px[:, None], axis=-1) <= radius_px
    called = data["scores"] >= threshold
    gt_called = data["gt_scores"] >= threshold
    truth = data["true_success"]
    rows = []
    for t in range(steps):
        neg, pos = ~truth[:, t], truth[:, t]
        rows.append({"step": t + 1, "drift_px": float(np.nanmean(drift[:, t])), "robot_lost": float(np.isnan(drift[:, t]).mean()),
                     "true_success": float(truth[:, t].mean()), "looks_success": float(np.nanmean(looks[:, t])),
                     "looks_fp": float(looks[neg, t].mean()) if neg.any() else float("nan"),
                     "called": float(called[:, t].mean()),
                     "fp_rate": float(called[neg, t].mean()) if neg.any() else float("nan"),
                     "tp_rate": float(called[pos, t].mean()) if pos.any() else float("nan"),
                     "gt_frame_fp_rate": float(gt_called[neg, t].mean()) if neg.any() else float("nan"),
                     "gt_frame_tp_rate": float(gt_called[pos, t].mean()) if pos.any() else float("nan"),
                     "target_px_imagined": float(imagined_target[:, t].mean()), "target_px_true": float(true_target[:, t].mean())})
    # Episode-level, as training would see it: the first call ends the episode.
    first_call = np.where(called.any(1), called.argmax(1), steps)  # index of the ending step, or steps if never
    reached = np.array([truth[b, : min(first_call[b] + 1, steps)].any() for b in range(count)])
    claimed = first_call < steps
    # The same verdict from a perfect reader of the imagined frames (success = the imagined robot's centroid within
    # the success radius of the target): what the world model's drift alone allows.
    looks_first = np.where(looks.any(1), looks.argmax(1), steps)
    looks_reached = np.array([truth[b, : min(looks_first[b] + 1, steps)].any() for b in range(count)])
    summary = {"episodes": int(count), "threshold": threshold, "radius_px": radius_px,
               **return_fidelity(data["scores"], data["true_score"], truth, first_call, int(data.get("group", 1))),
               # the same with the reflector reading the GT frames of the same states: a perfect world model's bound
               **{f"gt_frame_{k}": v for k, v in return_fidelity(
                   data["gt_scores"], data["true_score"], truth, np.where(gt_called.any(1), gt_called.argmax(1), steps),
                   int(data.get("group", 1))).items()},
               # a 0/1 return, the reflector's success call where the episode ends (ours; World-Env and RLinf give
               # the continuous score): the same function on the calls, which are 1 at the first call and 0 if none
               **{f"call_{k}": v for k, v in return_fidelity(
                   called.astype(float), data["true_score"], truth, first_call, int(data.get("group", 1))).items()},
               "reader_claimed_success": float((looks_first < steps).mean()),
               "reader_true_success_of_same_steps": float(looks_reached.mean()),
               "reader_agreement": float(((looks_first < steps) == looks_reached).mean()),
               "claimed_success": float(claimed.mean()), "true_success_of_same_steps": float(reached.mean()),
               "agreement": float((claimed == reached).mean()),
               "true_success_full_16_steps": float(truth.any(1).mean()),
               "fp_rate_all_steps": float(called[~truth].mean()), "tp_rate_all_steps": float(called[truth].mean()),
               "gt_frame_fp_rate_all_steps": float(gt_called[~truth].mean()),
               "looks_fp_all_steps": float(np.nanmean(looks[~truth])),
               # what the reflector reads success from ("almost no target pixel left visible"), on its false calls
               "false_call_target_px_imagined": float(imagined_target[called & ~truth].mean()) if (called & ~truth).any() else float("nan"),
               "false_call_target_px_true": float(true_target[called & ~truth].mean()) if (called & ~truth).any() else float("nan"),
               "false_call_looks_success": float(looks[called & ~truth].mean()) if (called & ~truth).any() else float("nan"),
               "drift_px_step1": rows[0]["drift_px"], "drift_px_last": rows[-1]["drift_px"],
               "cpu_seconds": data["cpu_seconds"]}
    return rows, summary


def return_fidelity(scores: np.ndarray, true_score: np.ndarray, truth: np.ndarray, first_call: np.ndarray,
                    group: int) -> dict[str, float]:
    """How well the reward GRPO is given (the relative reward's return: the reflector's score on the imagined frame
    where the episode ends, at its first success call or the last step) tracks the return the same actions earn in
    the ground truth (1 if they reach the target by that step, else the true score there). GRPO only uses a group's
    returns relative to each other, so: the mean gap, the correlation within each group of `group` episodes from one
    start (groups with a constant side skipped), and how often the sign of an episode's GRPO advantage (its return
    minus the group mean) is the same on both sides (pairs where either is 0 skipped), and the fraction of episodes
    that sign counts (a 0/1 return leaves whole groups flat: they carry no advantage)."""
    count, steps = scores.shape
    end = np.minimum(first_call, steps - 1)
    imagined = np.clip(scores[np.arange(count), end], 0.0, 1.0)
    true = np.array([1.0 if truth[b, : end[b] + 1].any() else true_score[b, end[b]] for b in range(count)])
    correlations, same_sign, signed = [], 0, 0
    for start in range(0, count - count % group, group):
        a, b = imagined[start : start + group], true[start : start + group]
        if group > 1 and a.std() > 0 and b.std() > 0:
            correlations.append(float(np.corrcoef(a, b)[0, 1]))
        da, db = np.sign(a - a.mean()), np.sign(b - b.mean())
        both = (da != 0) & (db != 0)
        same_sign, signed = same_sign + int((da[both] == db[both]).sum()), signed + int(both.sum())
    return {"return_imagined": float(imagined.mean()), "return_true": float(true.mean()),
            "return_gap_abs": float(np.abs(imagined - true).mean()),
            "return_within_group_correlation": float(np.mean(correlations)) if correlations else float("nan"),
            "advantage_sign_agreement": same_sign / signed if signed else float("nan"),
            "advantage_signed_fraction": signed / count}


def target_pixels(frames: np.ndarray) -> np.ndarray:
    """Visible target pixels per frame [..., S, S]: the reflector's target channel (`reflector_image`), i.e. pixels in
    (TARGET_PIXEL_THRESHOLD, ROBOT_PIXEL_THRESHOLD]."""
    from mmpost.tasks.world_env.models import ROBOT_PIXEL_THRESHOLD, TARGET_PIXEL_THRESHOLD

    frames = np.asarray(frames, dtype=np.float64)
    return ((frames > TARGET_PIXEL_THRESHOLD) & (frames <= ROBOT_PIXEL_THRESHOLD)).sum((-2, -1))


def imagined_threshold(data: dict) -> float:
    """The threshold with the best balanced accuracy on these imagined frames against the per-step truth."""
    from mmpost.tasks.world_env.models import pick_threshold

    return pick_threshold(data["scores"].reshape(-1), data["true_success"].reshape(-1))


def report(rows: list[dict], summary: dict, title: str) -> str:
    keys = ["step", "drift_px", "true_success", "looks_success", "looks_fp", "called", "fp_rate", "tp_rate",
            "gt_frame_fp_rate", "gt_frame_tp_rate", "target_px_imagined", "target_px_true"]
    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys) + " |")
    lines += ["", "Summary: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=str(REPO / "artifacts" / "tiny-vla-world-env"))
    parser.add_argument("--world-model", default=None, help="world model folder (default artifacts/world-env-reach-wm)")
    parser.add_argument("--reflector", default=None, help="reflector folder (default artifacts/world-env-reflector)")
    parser.add_argument("--starts", type=int, default=16, help="training starts (the task's first N train rows)")
    parser.add_argument("--group", type=int, default=8, help="episodes per start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snap", action="store_true", help="imagined frames snapped to the palette (env arg snap_frames)")
    parser.add_argument("--name", default="learning_world_env_s6_diagnosis")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    data = imagine(args.policy, args.starts, args.group, world_model=args.world_model, reflector=args.reflector,
                   seed=args.seed, snap=args.snap)
    rows, summary = per_step_table(data)
    best = imagined_threshold(data)
    rows_best, summary_best = per_step_table(data, best)
    text = [f"World-Env diagnosis: policy `{Path(args.policy).name}`, world model `{args.world_model or 'world-env-reach-wm'}`, "
            f"reflector `{args.reflector or 'world-env-reflector'}`{', frames snapped to the palette' if args.snap else ''}; {args.starts} training starts x {args.group} "
            f"episodes, {data['config'].max_steps} steps each, no termination; seed {args.seed}.", "",
            report(rows, summary, f"At the reflector's own threshold {data['threshold']:.4f}"), "",
            report(rows_best, summary_best, f"At the threshold with the best balanced accuracy on these imagined frames "
                                            f"({best:.4f}; chosen on the same frames: an upper bound)")]
    body = "\n".join(text) + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.md").write_text(body)
    (args.results / f"{args.name}.json").write_text(json.dumps(
        {"policy": args.policy, "world_model": args.world_model, "reflector": args.reflector, "starts": args.starts,
         "group": args.group, "seed": args.seed, "snap": args.snap, "own_threshold": {"per_step": rows, "summary": summary},
         "imagined_threshold": {"threshold": best, "per_step": rows_best, "summary": summary_best}}, indent=1))
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
