"""Jobs sharing a small machine: how the torch thread count and the OpenMP wait policy decide the slowdown.

    python benchmarks/shared_machine.py                    # 3 rounds: wait policy default / PASSIVE, 1 and 2 jobs
    python benchmarks/shared_machine.py --rounds 5 --blocks 4

A job is one `mmpost` GRPO run (the grpo recipe on the tiny Qwen2.5-VL: 2 prompts x 8 samples x 32 tokens). Inside
each job the thread counts alternate block by block (`torch.set_num_threads`: 1, 2, ...), so every thread count sees
the same background; the OpenMP wait policy is fixed per process (libgomp reads it at start), so policies alternate
between processes. Each configuration runs alone and as two identical jobs started together. Reported: the median
step time per (policy, threads, jobs), the slowdown of two jobs over one, and the load average before and after
(other work on the machine is background that every configuration shares).

Why: with as many OpenMP threads as cores, a thread that waits for its partner spins (GNU libgomp spins for a
while before it sleeps: OMP_WAIT_POLICY unset); when another process holds the partner's core, the spinning burns
the time slice the partner needs, and a step can take tens of times longer instead of about twice.
Not a test: minutes of wall time. Writes `benchmarks/results/shared_machine.{md,json}`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def child(options: argparse.Namespace) -> None:
    """One job: build the run once, then alternate thread counts in blocks of steps; prints one JSON line."""
    import torch

    from mmpost.builder import build_run
    from mmpost.config import load_config
    from mmpost.trainer import train_step

    overrides = [f"model.path={options.model_dir}", "model.zoo=null", f"train.output_dir={options.work}",
                 "train.progress=false", "eval.heldout=false", "data.prompts_per_step=2", "rollout.num_generations=8",
                 "rollout.max_new_tokens=32", "train.threads=1"]
    run = build_run(load_config(REPO / "recipes" / "grpo.yaml", overrides))
    threads = [int(t) for t in options.thread_counts.split(",")]
    times: dict[int, list[float]] = {t: [] for t in threads}
    step = 0
    for t in threads:  # warm-up at every thread count (thread pools start, caches fill)
        torch.set_num_threads(t)
        step += 1
        train_step(run, step)
    for _ in range(options.blocks):
        for t in threads:
            torch.set_num_threads(t)
            for _ in range(options.steps_per_block):
                step += 1
                start = time.perf_counter()
                train_step(run, step)
                times[t].append(time.perf_counter() - start)
    print("RESULT " + json.dumps({str(t): v for t, v in times.items()}), flush=True)


def launch(count: int, policy: str, options: argparse.Namespace, model_dir: Path, scratch: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    env["MMPOST_OMP_WAIT_POLICY"] = "keep"  # measure exactly the policy named here, not mmpost's default
    processes = []
    for _ in range(count):
        work = tempfile.mkdtemp(dir=scratch)
        command = [sys.executable, __file__, "--child", "--model-dir", str(model_dir), "--work", work,
                   "--thread-counts", ",".join(options.threads), "--blocks", str(options.blocks),
                   "--steps-per-block", str(options.steps_per_block)]
        processes.append(subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    results = []
    for process in processes:
        out, err = process.communicate()
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0 or not lines:
            raise SystemExit(f"job failed ({process.returncode}):\n{err[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs="+", default=["1", "2"])
    parser.add_argument("--policies", nargs="+", default=["default", "PASSIVE"],
                        help="OMP_WAIT_POLICY per process; 'default' leaves it unset (libgomp's own default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--steps-per-block", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--thread-counts", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options)
        return
    load_before = os.getloadavg()
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="mmpost-shared-"))
    model_dir = scratch / "tiny-qwen2.5-vl"
    subprocess.run([sys.executable, "-m", "mmpost.cli", "zoo", "build", "tiny-qwen2.5-vl", "--out", str(model_dir)],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: dict[tuple[str, str, int], list[float]] = {}
    loads = []
    for round_index in range(options.rounds):
        for policy in options.policies:
            for jobs in (1, 2):
                loads.append(os.getloadavg()[0])
                for result in launch(jobs, policy, options, model_dir, scratch):
                    for threads, values in result.items():
                        samples.setdefault((policy, threads, jobs), []).extend(values)
                summary = ", ".join(f"{t} thr {statistics.median(samples[(policy, t, jobs)]):.2f}" for t in options.threads)
                print(f"round {round_index + 1} policy={policy} jobs={jobs}: {summary} s/step", flush=True)
    load_after = os.getloadavg()
    rows = []
    for policy in options.policies:
        for threads in options.threads:
            one = statistics.median(samples[(policy, threads, 1)])
            two = statistics.median(samples[(policy, threads, 2)])
            rows.append({"omp_wait_policy": policy, "threads": int(threads), "one_job_s_per_step": round(one, 3),
                         "two_jobs_s_per_step": round(two, 3), "two_over_one": round(two / one, 2),
                         "steps_one": len(samples[(policy, threads, 1)]), "steps_two": len(samples[(policy, threads, 2)])})
    best = min(r["one_job_s_per_step"] for r in rows)
    for row in rows:
        row["two_jobs_over_best_one_job"] = round(row["two_jobs_s_per_step"] / best, 2)
    report = {"rows": rows, "rounds": options.rounds, "blocks": options.blocks, "steps_per_block": options.steps_per_block,
              "cpu_count": os.cpu_count(), "load_average_before": load_before, "load_average_after": load_after,
              "load_average_1min_at_each_launch": loads, "minutes": round((time.time() - started) / 60, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shared_machine.json").write_text(json.dumps(report, indent=1))
    lines = ["| OMP_WAIT_POLICY | torch threads | one job: s/step | two jobs: s/step | two / one | two jobs / best single job |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['omp_wait_policy']} | {row['threads']} | {row['one_job_s_per_step']:.3f} | "
                     f"{row['two_jobs_s_per_step']:.3f} | {row['two_over_one']:.1f}x | {row['two_jobs_over_best_one_job']:.1f}x |")
    lines.append("")
    lines.append(f"{os.cpu_count()} cores; grpo recipe on the tiny Qwen2.5-VL (2 prompts x 8 samples x 32 tokens); medians "
                 f"over {options.rounds} rounds x {options.blocks} blocks x {options.steps_per_block} steps per thread count "
                 f"and job; load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_before)} before, "
                 f"{'/'.join(f'{v:.1f}' for v in load_after)} after, 1-min load at each launch "
                 f"{min(loads):.1f}-{max(loads):.1f} (other engineers' work is background every configuration shares).")
    (RESULTS / "shared_machine.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
