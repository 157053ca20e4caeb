"""`mmpost train | validate | list | zoo build | eval score`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def resolve_recipe(name: str) -> Path:
    """A recipe file path, or the name of a shipped recipe (`visurf` -> recipes/visurf.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    from mmpost.registry import closest_names

    names = [p.stem for p in RECIPES_DIR.glob("*.yaml")]
    hint = closest_names(name, names)
    raise SystemExit(f"error: recipe '{name}' is neither a file nor a shipped recipe"
                     + (f"; did you mean '{hint[0]}'?" if hint else "") + f" Shipped: {sorted(names)}")


def cmd_train(args) -> int:
    from mmpost.config import load_config
    from mmpost.trainer import train

    config = load_config(resolve_recipe(args.recipe), args.overrides)
    summary = train(config)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary per run, not one per process
        _print_summary(summary)
    from mmpost.errors import summary_exit_code

    return summary_exit_code(summary)


def cmd_validate(args) -> int:
    from mmpost.builder import validate
    from mmpost.config import describe, load_config

    path = resolve_recipe(args.recipe)
    config = load_config(path, args.overrides)
    for line in validate(config):
        print(f"  ok  {line}")
    if args.explain:
        for key, doc, default in describe():
            print(f"{key:42s} {doc}  [default: {default!r}]")
    print(f"{path}: valid")
    return 0


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from mmpost.registry import ALL_REGISTRIES

    console = Console()
    table = Table(title="mmpost: registered components")
    table.add_column("kind")
    table.add_column("names")
    table.add_row("recipe", ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))))
    for kind, registry in ALL_REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        try:
            names = registry.names()
        except ImportError as error:  # a broken plugin must not hide the rest
            names = [f"<import failed: {error}>"]
        table.add_row(kind, ", ".join(names) or "-")
    console.print(table)
    return 0


def cmd_zoo(args) -> int:
    from mmpost.registry import MODEL_ZOO

    if args.zoo_command == "list":
        print("\n".join(MODEL_ZOO.names()))
        return 0
    path = MODEL_ZOO.get(args.name)(args.out)
    print(f"wrote {args.name} to {path}")
    return 0


def cmd_eval(args) -> int:
    import importlib

    # The CLI front door dispatches to the harness by name; the engine itself never imports eval.
    forwarded = [a for i, a in enumerate(args.eval_args) if not (i == 0 and a == "--")]
    return importlib.import_module("mmpost.eval.cli").eval_main(forwarded)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="run summary", show_header=False)
    for key in ["steps", "seconds", "seconds_per_step", "heldout_accuracy_before", "heldout_accuracy_after",
                "output_dir", "metrics", "checkpoint", "curves", "stopped_at", "interrupted_at", "signal"]:
        if key in summary and summary[key] is not None:
            value = summary[key]
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpost", description="Post-train multimodal models with SFT and RL.")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a recipe: mmpost train RECIPE.yaml [key.sub=value ...]")
    train.add_argument("recipe")
    train.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    train.set_defaults(func=cmd_train)

    validate = commands.add_parser("validate", help="check a recipe without building a model")
    validate.add_argument("recipe")
    validate.add_argument("overrides", nargs="*")
    validate.add_argument("--explain", action="store_true", help="list every config key with its description")
    validate.set_defaults(func=cmd_validate)

    listing = commands.add_parser("list", help="registered recipes, rewards, estimators, losses, modalities, ...")
    listing.add_argument("kind", nargs="?")
    listing.set_defaults(func=cmd_list)

    zoo = commands.add_parser("zoo", help="tiny real-architecture models")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_commands.add_parser("build", help="write a zoo model with save_pretrained")
    build.add_argument("name")
    build.add_argument("--out", required=True)
    zoo_commands.add_parser("list")
    zoo.set_defaults(func=cmd_zoo)

    evaluate = commands.add_parser(
        "eval", help="evaluation harness: mmpost eval --model M --benchmark B --data DIR | mmpost eval score ...",
        add_help=False)
    evaluate.add_argument("eval_args", nargs=argparse.REMAINDER)
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mmpost.errors import run_command

    argv = sys.argv[1:] if argv is None else list(argv)
    # `--debug` anywhere (or MMPOST_DEBUG=1): tracebacks instead of one-line errors.
    debug = "--debug" in argv or os.environ.get("MMPOST_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if argv[:1] == ["eval"]:  # the harness parses its own flags (argparse cannot forward `--model ...`)
        argv = ["eval", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_command(lambda: args.func(args), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
