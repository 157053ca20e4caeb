"""Build every cached model `make bench-learning` starts from, once, and time each build.

    python benchmarks/warm_starts.py            # or: make warm-starts

Each part of the suite builds its own warm starts on first use anyway (benchmarks/learning*.py call the same
functions below), one after another; here the builds run `--parallel` at a time (processes on 1 torch thread each,
longest first), and building them first separates the one-off build time from the suite's own run time, so "the
suite with cached warm starts" is a measured number (`time make warm-starts; time make bench-learning`). A folder that
is already built is reused (the zoo's version stamp decides, as in a recipe run). Writes
benchmarks/results/warm_starts.json: per build its wall and CPU seconds, and the folders the run wrote. Not a test.
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


def vision_language_models() -> dict[str, tuple[str, list[str]]]:
    """The zoo warm starts of the recipes learning.py, learning_vs_trl.py and learning_modalities.py run: model folder
    -> (recipe, overrides) of one run that names it."""
    import learning
    import learning_modalities
    from learning_vs_trl import SHARED, WARM_START
    from mmpost.config import load_config

    runs = [(method, []) for method in learning.METHODS]
    runs.append(("grpo", [f"model.path={REPO / WARM_START[1]}", f"model.zoo={WARM_START[0]}", *SHARED]))
    runs += [(learning_modalities.GROUPS[name].recipe, list(learning_modalities.GROUPS[name].overrides))
             for name in learning_modalities.DEFAULT_GROUPS]
    models = {}
    for recipe, overrides in runs:
        model = load_config(REPO / "recipes" / f"{recipe}.yaml", overrides).model
        if model.zoo:
            models.setdefault(str(Path(model.path).resolve()), (recipe, overrides))
    return models


def vision_language(recipe: str, overrides: list[str]) -> None:
    from mmpost.config import load_config
    from mmpost.model import ensure_model_folder

    ensure_model_folder(load_config(REPO / "recipes" / f"{recipe}.yaml", overrides).model)


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


OTHER_PARTS = {"world_env": world_env, "propa": propa, "rlir": rlir, "audio": audio, "flow": flow}
# Build minutes measured one at a time on 1 thread (session 10): the longest start first, so the lanes end together.
MINUTES = {"tiny-qwen2.5-vl-gui-8192": 4.6, "world_env": 5.1, "tiny-qwen2.5-vl-video": 3.5, "propa": 3.8,
           "tiny-qwen2.5-vl-driving": 3.3, "rlir": 0.8, "tiny-qwen2.5-vl-shapes": 0.5, "tiny-qwen2.5-vl-mmupt": 0.4,
           "audio": 0.2, "flow": 0.1}


def units() -> dict[str, tuple]:
    """Every build as (function, args), named by its model folder (vision-language) or its suite part."""
    out = {Path(folder).name: (vision_language, args) for folder, args in vision_language_models().items()}
    out.update({name: (function, ()) for name, function in OTHER_PARTS.items()})
    return dict(sorted(out.items(), key=lambda item: -MINUTES.get(item[0], 1.0)))


def build(name: str, function, args) -> dict:
    """One build in this process, timed (what it wrote is listed for the whole run: builds run side by side)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    function(*args)
    record = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1)}
    print(f"{name}: {record}", flush=True)
    return record


def cpu_seconds() -> float:
    """This process's CPU seconds and its finished children's (a builder may train in a subprocess)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def folders() -> dict[str, float]:
    artifacts = REPO / "artifacts"
    return {p.name: p.stat().st_mtime for p in artifacts.iterdir()} if artifacts.is_dir() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=2, help="builds at once, each a process on 1 torch thread")
    parser.add_argument("--only", nargs="+", help="build only these (names as listed by --list)")
    parser.add_argument("--list", action="store_true", help="list the builds and exit")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "warm_starts.json"))
    args = parser.parse_args(argv)

    todo = units()
    if args.list:
        print("\n".join(todo))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(todo))
        if unknown:
            parser.error(f"unknown build(s) {unknown}; --list shows them")
        todo = {name: unit for name, unit in todo.items() if name in args.only}
    started, before = time.perf_counter(), folders()
    if args.parallel <= 1:
        record = {name: build(name, function, unit_args) for name, (function, unit_args) in todo.items()}
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        # Each build writes only its own folders under artifacts/, so builds in separate processes do not race.
        with ProcessPoolExecutor(max_workers=args.parallel, mp_context=get_context("spawn")) as pool:
            futures = {name: pool.submit(build, name, function, unit_args) for name, (function, unit_args) in todo.items()}
            record = {name: future.result() for name, future in futures.items()}
    wall = time.perf_counter() - started
    print(f"all warm starts: {wall:.0f} s wall, {sum(r['cpu_s'] for r in record.values()):.0f} CPU s, "
          f"{args.parallel} at once", flush=True)
    built = sorted(k for k, v in folders().items() if before.get(k) != v)
    if not built and Path(args.results).is_file():
        print(f"nothing built (all cached): {args.results} keeps the run that built them", flush=True)
        return 0
    Path(args.results).write_text(json.dumps({"builds": record, "wall_s": round(wall, 1), "parallel": args.parallel,
                                              "built": built}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
