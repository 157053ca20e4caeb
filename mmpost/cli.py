"""`mmpost train | validate | list | zoo build | eval`.

The command line answers fast: `--help`, config errors, `list` and `validate` never import torch or the
built-in components (names come from `mmpost.registry_index`, which reads the registrations from source);
only `train`, `zoo build`, `eval` and `validate --deep` import the heavy modules, after the config is known good.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

# `mmpost list KIND` accepts the registry kind, its plural, or the word people use for it.
KIND_ALIASES = {
    "recipes": "recipe", "estimator": "advantage", "estimators": "advantage", "loss": "policy_loss",
    "losses": "policy_loss", "policy_losses": "policy_loss", "sft_losses": "sft_loss", "kls": "kl",
    "kl_estimator": "kl", "kl_estimators": "kl", "kl_controllers": "kl_controller", "controller": "kl_controller",
    "controllers": "kl_controller", "source": "experience_source", "sources": "experience_source",
    "experience_sources": "experience_source", "backend": "rollout_backend", "backends": "rollout_backend",
    "rollout_backends": "rollout_backend", "modalities": "modality", "model": "zoo", "models": "zoo",
    "env": "environment", "envs": "environment", "environments": "environment", "policies": "policy",
}


def shipped_recipes() -> dict[str, str]:
    """Shipped recipe name -> a one-line description (the YAML's second comment line, up to its first colon)."""
    recipes = {}
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        comments = [line[1:].strip() for line in path.read_text().splitlines()[:3] if line.startswith("#")]
        about = comments[1] if len(comments) > 1 else ""
        about = about.split(": ")[0].rstrip(".")
        recipes[path.stem] = about if len(about) <= 80 else about[:77] + "..."
    return recipes


def recipes_text() -> str:
    recipes = shipped_recipes()
    width = max(map(len, recipes), default=0)
    return "\n".join(f"  {name:<{width}}  {about}" for name, about in recipes.items())


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


def _load_checked_config(recipe: str, overrides: list[str]):
    """The config, with every registered name and every `*_args` key checked from source (no heavy imports)."""
    from mmpost.config import load_config
    from mmpost.registry_index import check_config

    path = resolve_recipe(recipe)
    config = load_config(path, overrides)
    return path, config, check_config(config)


def cmd_train(args) -> int:
    if args.recipe is None:
        print("usage: mmpost train RECIPE [key.sub=value ...]   (a shipped recipe name or a YAML file)\n\n"
              f"shipped recipes:\n{recipes_text()}\n\nexample: mmpost train grpo train.steps=10\n"
              "every key, its default and the recipe's value: mmpost validate RECIPE --explain")
        return 0  # asked what there is to train: an answer, not an error
    _, config, _ = _load_checked_config(args.recipe, args.overrides)
    _announce_zoo_build(config.model.zoo, config.model.path)
    from mmpost.trainer import train

    summary = train(config)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary per run, not one per process
        _print_summary(summary)
    from mmpost.errors import summary_exit_code

    return summary_exit_code(summary)


def _announce_zoo_build(zoo: str | None, path: str) -> None:
    """A first run builds its zoo model (seconds to minutes on CPU): say so before it starts."""
    if zoo and not (Path(path) / "config.json").is_file() and int(os.environ.get("RANK", "0")) == 0:
        print(f"building zoo model {zoo} at {path} (first run only: later runs load it from there)", flush=True)


def cmd_validate(args) -> int:
    from mmpost.registry_index import needs_import_checks

    path, config, checked = _load_checked_config(args.recipe, args.overrides)
    reasons = needs_import_checks(config)
    deep = args.deep or bool(reasons)
    if deep:
        # The checks `train` runs before loading a model that need the components imported (torch: seconds).
        from mmpost.builder import validate

        checked += [f"{line} (imported{': ' + '; '.join(reasons) if reasons and not args.deep else ''})"
                    for line in validate(config)]
    for line in checked:
        print(f"  ok  {line}")
    if args.explain:
        print(explain_table(config))
        # The chosen plugins' typed options (`Registry.options`): this imports those plugins (and torch).
        from mmpost.builder import plugin_options
        from mmpost.registry import describe_options

        for key, registry, name, _ in plugin_options(config):
            for option, text in describe_options(registry.options(name)) or [("", "no options")]:
                print(f"  {key + '.' + option if option else key:40s} {registry.kind} {name!r} option: {text}")
    print(f"{path}: valid" + ("" if deep else " (names and arguments read from source; the rest of what train checks "
                                              "needs no import for this config; --deep imports every component anyway)"))
    return 0


def explain_table(config) -> str:
    """Every key: the recipe's value next to the default (`*` where they differ) and its description."""
    from mmpost.config import describe, to_dict

    values = to_dict(config)
    lines = [f"  {'key':40s} {'value':28s} {'default':22s} description"]
    for key, doc, default in describe():
        value = values
        for part in key.split("."):
            value = value[part]
        default = to_dict(default)
        mark = "*" if value != default else " "
        lines.append(f"{mark} {key:40s} {_short(value):28s} {_short(default):22s} {doc}")
    lines.append("(* = set by the recipe or an override)")
    return "\n".join(lines)


def _short(value, width: int = 27) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def resolve_kind(kind: str) -> str:
    """`rewards` -> `reward`, `losses` -> `policy_loss`, ...; an unknown kind lists the known ones."""
    from mmpost.registry import ALL_REGISTRIES, closest_names

    key = kind.lower().replace("-", "_")
    kinds = ["recipe", *ALL_REGISTRIES]
    for candidate in (key, KIND_ALIASES.get(key), key[:-1] if key.endswith("s") else None,
                      key[:-3] + "y" if key.endswith("ies") else None):
        if candidate in kinds:
            return candidate
    hint = closest_names(key, kinds + list(KIND_ALIASES))
    raise SystemExit(f"error: unknown kind '{kind}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                     + f" Kinds: {', '.join(kinds)}")


def listing_rows(kind: str | None = None) -> list[tuple[str, str]]:
    """(kind, "name (alias, ...), ...") for every kind, or one; each component once, its aliases beside it."""
    from mmpost.registry import ALL_REGISTRIES
    from mmpost.registry_index import full_index

    index = full_index()
    rows = [("recipe", ", ".join(shipped_recipes()))] if kind in (None, "recipe") else []
    for name in ALL_REGISTRIES:
        if kind in (None, name):
            entries = sorted(index.get(name, {}).values(), key=lambda e: e.name)
            rows.append((name, ", ".join(e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "") for e in entries) or "-"))
    return rows


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mmpost: registered components (aliases in parentheses)")
    table.add_column("kind")
    table.add_column("names")
    for row in listing_rows(resolve_kind(args.kind) if args.kind else None):
        table.add_row(*row)
    Console().print(table)
    return 0


def cmd_zoo(args) -> int:
    if args.zoo_command == "list":
        from mmpost.registry_index import full_index

        print("\n".join(sorted(full_index()["zoo"])))
        return 0
    from mmpost.registry_index import lookup

    lookup("zoo", args.name)  # an unknown name fails here, before torch is imported
    print(f"building zoo model {args.name} at {args.out}", flush=True)
    from mmpost.registry import MODEL_ZOO

    path = MODEL_ZOO.get(args.name)(args.out)
    print(f"wrote {args.name} to {path} (load it with model.path={path} model.zoo=null)")
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
    parser = argparse.ArgumentParser(prog="mmpost", description="Post-train multimodal models with SFT and RL.",
                                     epilog="Start with: mmpost train visurf   (the shipped recipes: mmpost train)")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a recipe: mmpost train RECIPE [key.sub=value ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a recipe (a shipped name or a YAML file), with key.sub=value overrides.",
        epilog=f"shipped recipes:\n{recipes_text()}\n\nevery key, its default and the recipe's value: "
               "mmpost validate RECIPE --explain\nexample: mmpost train grpo optim.lr=1e-4 train.output_dir=runs/g")
    train.add_argument("recipe", nargs="?", help="shipped recipe name (see below) or path to a recipe YAML")
    train.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    train.set_defaults(func=cmd_train)

    validate = commands.add_parser("validate", help="check a recipe without building a model")
    validate.add_argument("recipe")
    validate.add_argument("overrides", nargs="*")
    validate.add_argument("--explain", action="store_true",
                          help="list every config key: the recipe's value, the default and a description")
    validate.add_argument("--deep", action="store_true",
                          help="also import every named component and build the task (slower: imports torch)")
    validate.set_defaults(func=cmd_validate)

    listing = commands.add_parser("list", help="registered recipes, rewards, estimators, losses, modalities, ...")
    listing.add_argument("kind", nargs="?", help="one kind only: recipes, rewards, advantages, losses, tasks, zoo, ...")
    listing.set_defaults(func=cmd_list)

    zoo = commands.add_parser("zoo", help="tiny real-architecture models")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_commands.add_parser("build", help="write a zoo model with save_pretrained")
    build.add_argument("name")
    build.add_argument("--out", required=True)
    zoo_commands.add_parser("list")
    zoo.set_defaults(func=cmd_zoo)

    evaluate = commands.add_parser(
        "eval", help="evaluation harness: mmpost eval --model M --benchmark B [--data DIR] | eval score | eval search",
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
