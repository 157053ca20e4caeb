"""Build every cached model `make bench-learning` starts from, once, and time each build.

    python benchmarks/warm_starts.py            # or: make warm-starts

Each part of the suite builds its own warm starts on first use anyway (benchmarks/learning*.py call the same
functions below); building them here first separates the one-off build time from the suite's own run time, so
"the suite with cached warm starts" is a measured number (`time make warm-starts; time make bench-learning`).
A folder that is already built is reused (the zoo's version stamp decides, as in a recipe run). Writes
benchmarks/results/warm_starts.json: seconds per part (wall, this process's CPU) and what each built. Not a test.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_report import REPO  # noqa: E402


def shapes_and_modalities() -> None:
    """The zoo warm starts named by the recipes learning.py, learning_vs_trl.py and learning_modalities.py run."""
    import learning
    import learning_modalities
    from learning_vs_trl import recipe_config
    from mmpost.config import load_config
    from mmpost.model import ensure_model_folder

    for method in learning.METHODS:
        ensure_model_folder(load_config(REPO / "recipes" / f"{method}.yaml").model)
    ensure_model_folder(recipe_config("grpo", []).model)
    for name in learning_modalities.DEFAULT_GROUPS:
        group = learning_modalities.GROUPS[name]
        ensure_model_folder(load_config(REPO / "recipes" / f"{group.recipe}.yaml", list(group.overrides)).model)


def audio() -> None:
    import learning_audio

    learning_audio.ensure_warm_start()


def propa() -> None:
    import learning_propa

    learning_propa.ensure_warm_start()


def rlir() -> None:
    import learning_rlir

    learning_rlir.ensure_artifacts(list(learning_rlir.RECIPES))


def world_env() -> None:
    import learning_world_env

    learning_world_env.ensure_artifacts(list(learning_world_env.DEFAULT_SETTINGS))


def flow() -> None:
    import learning_flow

    learning_flow.ensure_warm_start()


PARTS = {"shapes, TRL control, modalities": shapes_and_modalities, "audio": audio, "propa": propa, "rlir": rlir,
         "world_env": world_env, "flow": flow}


def cpu_seconds() -> float:
    """This process's CPU seconds and its finished children's (a builder may train in a subprocess)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def folders() -> dict[str, float]:
    artifacts = REPO / "artifacts"
    return {p.name: p.stat().st_mtime for p in artifacts.iterdir()} if artifacts.is_dir() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "warm_starts.json"))
    args = parser.parse_args(argv)

    record = {}
    for name in args.parts:
        before, wall, cpu = folders(), time.perf_counter(), cpu_seconds()
        PARTS[name]()
        after = folders()
        record[name] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1),
                        "built": sorted(k for k, v in after.items() if before.get(k) != v)}
        print(f"{name}: {record[name]}", flush=True)
    total = sum(r["wall_s"] for r in record.values())
    print(f"all warm starts: {total:.0f} s", flush=True)
    Path(args.results).write_text(json.dumps({"parts": record, "wall_s": round(total, 1)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
