"""The registered names, read from source without importing it.

`mmpost list` and `mmpost validate` must answer in a second or two, but importing the built-in modules pulls in
torch, transformers and torchvision (5-10 s on a loaded 2-core machine). The registrations themselves are plain
statements (`@REWARDS.register("name")`, `AGGREGATIONS.add("token-mean", token_mean)`), so this module reads them
with `ast` from the files of every registry's built-in modules and from installed plugins' entry points, and
records each object's parameters so `validate` can check `task_args`, `modality_args` and reward `args`.

The index is a fast path only: training still resolves names by importing (`Registry.get`), and
tests/test_cli.py checks that this index lists exactly the names the imported registries hold.
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path

from mmpost import registry as _registry
from mmpost.registry import ALL_REGISTRIES, Registry, RegistryError, closest_names


@dataclass
class Signature:
    """Keyword parameters an object accepts (a function's, or a class's `__init__`), and those without a default."""

    parameters: tuple[str, ...]
    var_keyword: bool
    required: tuple[str, ...] = ()

    def unknown(self, keys) -> list[str]:
        return [] if self.var_keyword else [k for k in keys if k not in self.parameters]


@dataclass
class IndexEntry:
    name: str
    module: str
    object: str | None = None  # the function/class name in `module`, when the source names one
    aliases: list[str] = field(default_factory=list)
    signature: Signature | None = None  # None where the source does not show it (inherited __init__, entry point)
    task_modality: str | None = None  # for tasks: the class attribute `modality`, when a string literal
    methods: tuple[str, ...] = ()  # for classes: the methods the class body defines


def _registry_variables() -> dict[str, str]:
    """Module-level variable name in mmpost.registry -> registry kind (REWARDS -> "reward")."""
    return {name: value.kind for name, value in vars(_registry).items() if isinstance(value, Registry)}


def _source_files(module: str) -> list[tuple[Path, str]]:
    """(file, dotted module name) of a built-in module, or of every module in a built-in package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return []
    origin = Path(spec.origin)
    if origin.name != "__init__.py":
        return [(origin, module)]
    root = origin.parent
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files.append((path, ".".join((module, *parts))))
    return files


def _signature(node: ast.AST) -> Signature | None:
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"), None)
        if init is None:
            # A dataclass's fields are its keyword parameters; any other class inherits an __init__ we cannot see.
            if any(_decorator_name(d) == "dataclass" for d in node.decorator_list):
                fields = [n for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
                return Signature(tuple(f.target.id for f in fields), False,
                                 tuple(f.target.id for f in fields if f.value is None))
            return None if node.bases else Signature((), False)
        node = init
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    if pairs and pairs[0][0].arg in ("self", "cls"):
        pairs = pairs[1:]
    return Signature(tuple(a.arg for a, _ in pairs), args.kwarg is not None,
                     tuple(a.arg for a, default in pairs if default is None))


def _decorator_name(node: ast.AST) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else None


def _registry_call(node: ast.AST, variables: dict[str, str]) -> tuple[str, str, ast.Call | None] | None:
    """(kind, method, call) for `KIND.register(...)`, `KIND.register`, `KIND.add(...)`, `registry.KIND.add(...)`."""
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call is not None else node
    if not isinstance(target, ast.Attribute) or target.attr not in ("register", "add"):
        return None
    owner = target.value
    owner_name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else None
    if owner_name not in variables:
        return None
    return variables[owner_name], target.attr, call


def _string(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _methods(node: ast.AST) -> tuple[str, ...]:
    if not isinstance(node, ast.ClassDef):
        return ()
    return tuple(n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _class_string(node: ast.AST, attribute: str) -> str | None:
    if not isinstance(node, ast.ClassDef):
        return None
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attribute for t in statement.targets):
            if isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str):
                return statement.value.value
    return None


def scan_file(path: Path, module: str, variables: dict[str, str] | None = None) -> list[tuple[str, IndexEntry, str | None]]:
    """(kind, entry, alias_of) for every registration statement in one source file."""
    variables = variables if variables is not None else _registry_variables()
    text = path.read_text(encoding="utf-8")
    if not any(f"{name}." in text for name in variables):
        return []
    tree = ast.parse(text, filename=str(path))
    constants = {t.id: s.value.value for s in tree.body if isinstance(s, ast.Assign)
                 for t in s.targets if isinstance(t, ast.Name) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)}
    definitions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    found: list[tuple[str, IndexEntry, str | None]] = []
    registered: dict[tuple[str, str], str] = {}  # (kind, object name) -> registered name
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                hit = _registry_call(decorator, variables)
                if hit is None or hit[1] != "register":
                    continue
                kind, _, call = hit
                name = None
                if call is not None:
                    name = _string(call.args[0], constants) if call.args else \
                        _string(next((k.value for k in call.keywords if k.arg == "name"), None), constants)
                name = name or _class_string(node, "name") or node.name
                registered[(kind, node.name)] = name
                found.append((kind, IndexEntry(name, module, node.name, signature=_signature(node),
                                               task_modality=_class_string(node, "modality"), methods=_methods(node)), None))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        hit = _registry_call(node, variables)
        if hit is None or hit[1] != "add" or len(node.args) < 2:
            continue
        kind = hit[0]
        name = _string(node.args[0], constants)
        if name is None:
            continue
        target = node.args[1]
        object_name = target.id if isinstance(target, ast.Name) else None
        alias_of = registered.get((kind, object_name)) if object_name else None
        definition = definitions.get(object_name) if object_name else None
        found.append((kind, IndexEntry(name, module, object_name, signature=_signature(definition) if definition else None,
                                       task_modality=_class_string(definition, "modality") if definition else None), alias_of))
    return found


@lru_cache(maxsize=1)
def builtin_index() -> dict[str, dict[str, IndexEntry]]:
    """kind -> name -> entry, from the built-in modules of every registry (no imports of them)."""
    variables = _registry_variables()
    modules = sorted({m for r in ALL_REGISTRIES.values() for m in r._builtin_modules})
    files: dict[Path, str] = {}
    for module in modules:
        for path, dotted in _source_files(module):
            files.setdefault(path, dotted)
    return _merge(hit for path, dotted in files.items() for hit in scan_file(path, dotted, variables))


def _merge(hits) -> dict[str, dict[str, IndexEntry]]:
    index: dict[str, dict[str, IndexEntry]] = {kind: {} for kind in ALL_REGISTRIES}
    aliases: list[tuple[str, IndexEntry, str]] = []
    for kind, entry, alias_of in hits:
        if alias_of is not None:
            aliases.append((kind, entry, alias_of))
        else:
            index.setdefault(kind, {}).setdefault(entry.name, entry)
    for kind, entry, alias_of in aliases:
        primary = index[kind].get(alias_of)
        if primary is not None and entry.name != primary.name:
            primary.aliases.append(entry.name)
        else:
            index[kind].setdefault(entry.name, entry)
    return index


def plugin_index() -> dict[str, dict[str, IndexEntry]]:
    """Names that installed packages declare through `mmpost.<kind>` entry points. An object entry point is its
    name; a module entry point registers by decorators, so its file is read like a built-in's."""
    variables = _registry_variables()
    hits = []
    for kind in ALL_REGISTRIES:
        for entry in entry_points(group=f"mmpost.{kind}"):
            module, _, attribute = entry.value.partition(":")
            if attribute:
                hits.append((kind, IndexEntry(entry.name, module, attribute.strip()), None))
                continue
            try:
                files = _source_files(module)
            except (ImportError, ValueError):  # a broken plugin must not hide the rest
                files = []
            hits += [hit for path, dotted in files for hit in scan_file(path, dotted, variables)]
    return _merge(hits)


def full_index() -> dict[str, dict[str, IndexEntry]]:
    index = {kind: dict(entries) for kind, entries in builtin_index().items()}
    for kind, entries in plugin_index().items():
        for name, entry in entries.items():
            index.setdefault(kind, {}).setdefault(name, entry)
    return index


def known_names(kind: str, index: dict[str, dict[str, IndexEntry]] | None = None) -> dict[str, IndexEntry]:
    """name or alias -> entry for one kind."""
    entries = (index or full_index()).get(kind, {})
    names = dict(entries)
    for entry in entries.values():
        for alias in entry.aliases:
            names.setdefault(alias, entry)
    return names


def _live_entry(kind: str, name: str) -> IndexEntry | None:
    """A name this process has already registered (the Python API, a test, an imported plugin), described by the
    object itself: it costs no import, and it is what `Registry.get` would find first."""
    import inspect

    obj = ALL_REGISTRIES[kind]._entries.get(name)
    if obj is None:
        return None
    signature = None
    try:
        params = inspect.signature(obj).parameters
        usable = [p for p in params.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        signature = Signature(tuple(p.name for p in usable), any(p.kind is p.VAR_KEYWORD for p in params.values()),
                              tuple(p.name for p in usable if p.default is p.empty))
    except (TypeError, ValueError):
        pass
    return IndexEntry(name, getattr(obj, "__module__", "?"), getattr(obj, "__qualname__", None), signature=signature,
                      task_modality=getattr(obj, "modality", None) if isinstance(getattr(obj, "modality", None), str) else None,
                      methods=tuple(m for m in ("check_split",) if hasattr(obj, m)))


def lookup(kind: str, name: str, index: dict[str, dict[str, IndexEntry]] | None = None) -> IndexEntry | None:
    """The entry for `name`, None for a `module:attribute` path (only an import can check it); raises the same
    RegistryError as `Registry.get` for an unknown name."""
    if ":" in name:
        return None
    live = _live_entry(kind, name)
    if live is not None:
        return live
    names = known_names(kind, index)
    if name in names:
        return names[name]
    hint = closest_names(name, names)
    raise RegistryError(f"unknown {kind} '{name}'" + (f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else "")
                        + f" Registered: {sorted(names)}")


def _check_arguments(kind: str, entry: IndexEntry | None, given: dict, key: str) -> str:
    if entry is None or entry.signature is None or not given:
        return ""
    unknown = entry.signature.unknown(given)
    if unknown:
        from mmpost.config import ConfigError

        hint = closest_names(unknown[0], entry.signature.parameters)
        raise ConfigError(f"{key}: {kind} '{entry.name}' ({entry.module}.{entry.object}) takes no argument '{unknown[0]}'"
                          + (f"; did you mean '{hint[0]}'?" if hint else "")
                          + f" It accepts: {sorted(entry.signature.parameters)}", key=key)
    return f" (arguments {sorted(given)} accepted)"


def _check_plugin_options(kind: str, entry: IndexEntry | None, given: dict, key: str) -> str:
    """A plugin's `*_args` against its keyword parameters read from source, less the engine's inputs
    (`Registry.options` without importing): a name it does not take is an error. Where the source cannot tell
    (a `**kwargs` parameter, a declared options class, an inherited `__init__`), `builder.check_plugin_options`
    decides when `train` (or `validate --deep`) imports the plugin; value types are checked there too."""
    if entry is None or entry.signature is None or entry.signature.var_keyword or not given:
        return ""
    inputs = ALL_REGISTRIES[kind]._inputs
    options = [name for name in entry.signature.parameters if name not in inputs]
    unknown = [name for name in given if name not in options]
    if unknown:
        from mmpost.config import ConfigError

        hint = closest_names(unknown[0], options)
        raise ConfigError(f"{key}: {kind} '{entry.name}' has no option '{unknown[0]}'"
                          + (f"; did you mean '{key}.{hint[0]}'?" if hint else "")
                          + f" Its options: {options or 'none'}", key=key)
    return f" (options {sorted(given)} accepted)"


def _check_task_arguments(entry: IndexEntry | None, given: dict, task: str) -> str:
    """The task's options against its constructor, worded as `builder.build_task` words them."""
    from mmpost.config import ConfigError

    if entry is None or entry.signature is None:
        return ""
    label = f"task {task!r}"
    signature = entry.signature
    if not signature.var_keyword:
        unknown = [name for name in given if name not in signature.parameters]
        if unknown:
            hint = "; the row-skipping switch is data.skip_bad_rows" if "skip_bad_rows" in unknown else ""
            close = closest_names(unknown[0], signature.parameters)
            hint += f"; did you mean '{close[0]}'?" if close and not hint else ""
            raise ConfigError(f"data.task_args: {label} does not take {unknown} (it takes {list(signature.parameters)}){hint}; "
                              "when switching data.task, replace the recipe's task_args whole: data.task_args='{path: ...}'",
                              key="data.task_args")
    missing = [name for name in signature.required if name not in given]
    if missing:
        raise ConfigError(f"data.task_args.{missing[0]}: {label} needs it (data.task_args holds {sorted(given)})",
                          key="data.task_args")
    return f" (arguments {sorted(given)} accepted)" if given else ""


def needs_import_checks(config, index: dict[str, dict[str, IndexEntry]] | None = None) -> list[str]:
    """What in `config` only an import can check (`builder.validate`): `mmpost validate` runs those checks too
    when this is not empty, so a config that validates does not fail later for a reason visible before training."""
    index = index or full_index()
    reasons = []
    if config.rollout.num_generations < 2:
        reasons.append("one rollout per prompt: the advantage estimator is probed")
    if config.rollout.backend != "hf":
        reasons.append(f"rollout.backend={config.rollout.backend}: the backend checks it can start")
    task = _live_entry("task", config.data.task) or known_names("task", index).get(config.data.task)
    if task is None or "check_split" in task.methods:
        reasons.append(f"task {config.data.task}: its splits are checked")
    names = [config.data.task, config.algorithm.advantage, config.algorithm.source, *(r.name for r in config.reward_specs())]
    if any(":" in name for name in names):
        reasons.append("a module path names a component")
    return reasons


def check_config(config) -> list[str]:
    """The checks of `builder.validate` that need no import of torch or of the components: value ranges and secrets
    (`config.check_values`), every registered name, the keyword arguments given to the task, its modality and the
    rewards (read from source), the trackers, the model path. Errors name the key and where it was set.

    `builder.validate` (what `train` runs, and `mmpost validate --deep`) also builds the task, probes the advantage
    estimator's groups and the rollout backend; a `package.module:attribute` name and a non-default distributed
    strategy are checked here by importing them.
    """
    from mmpost.config import ConfigError, check_paths, check_values, located, origin_of

    checked = check_values(config)
    index = full_index()
    algorithm = config.algorithm

    def resolve(kind: str, name: str, key: str) -> IndexEntry | None:
        try:
            if ":" in name:  # a `package.module:attribute` path: only an import can check it
                ALL_REGISTRIES[kind].get(name)
                return None
            return lookup(kind, name, index)
        except RegistryError as error:
            raise RegistryError(f"{origin_of(config).where(key)}: {key}: {error}") from None

    try:
        for kind, name, key in [("advantage", algorithm.advantage, "algorithm.advantage"),
                                ("policy_loss", algorithm.policy_loss, "algorithm.policy_loss"),
                                ("aggregation", algorithm.aggregation, "algorithm.aggregation"),
                                ("kl", algorithm.kl_estimator, "algorithm.kl_estimator"),
                                ("sft_loss", algorithm.sft_loss, "algorithm.sft_loss"),
                                ("experience_source", algorithm.source, "algorithm.source"),
                                ("kl_controller", algorithm.kl_controller, "algorithm.kl_controller"),
                                ("rollout_backend", config.rollout.backend, "rollout.backend"),
                                ("policy", config.model.policy, "model.policy")]:
            entry = resolve(kind, name, key)
            given = {"advantage": algorithm.advantage_args, "policy_loss": algorithm.policy_loss_args,
                     "sft_loss": algorithm.sft_loss_args, "experience_source": algorithm.source_args,
                     "kl_controller": algorithm.kl_controller_args, "rollout_backend": config.rollout.backend_args}.get(kind)
            checked.append(f"{kind}: {name}" + (_check_plugin_options(kind, entry, dict(given), f"{key}_args")
                                                if given is not None else ""))
        task = resolve("task", config.data.task, "data.task")
        checked.append(f"task: {config.data.task}" + _check_task_arguments(task, dict(config.data.task_args), config.data.task))
        modality_name = task.task_modality if task is not None else None
        if modality_name:
            modality = resolve("modality", modality_name, "data.task")
            checked.append(f"modality: {modality_name}"
                           + _check_arguments("modality", modality, config.data.modality_args, "data.modality_args"))
        for position, spec in enumerate(config.reward_specs()):
            reward = resolve("reward", spec.name, "rewards")
            checked.append(f"reward: {spec.name} (weight {spec.weight})"
                           + _check_arguments("reward", reward, spec.args, f"rewards[{position}].args"))
        for name in config.eval.benchmarks:
            resolve("benchmark", name, "eval.benchmarks")
            checked.append(f"benchmark: {name}")
        if config.distributed.strategy != "auto" or config.distributed.accelerate_config:
            from mmpost.distributed import resolve_strategy  # imports torch; only configs that name a strategy pay

            resolve_strategy(config.distributed)
        checked.append(f"distributed: {config.distributed.strategy}")
        from mmpost.trackers import resolve_report_to

        trackers = resolve_report_to(config.train.report_to)
        if trackers:
            checked.append(f"trackers: {', '.join(trackers)} (installed)")
        check_paths(config)
    except ConfigError as error:
        raise located(config, error) from None
    return checked
