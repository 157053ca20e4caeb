"""One registry mechanism for every pluggable kind.

Built-ins register exactly as third parties do: a decorator in the defining module. A name resolves
in this order: what is already registered, the kind's built-in modules (imported lazily, so a worker
process resolves names without any set-up), the `mmpost.<kind>` entry-point group of installed
packages, and finally a `"package.module:attribute"` path written straight into a config.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import types
import typing
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """A name that does not resolve, or an object that does not fit its kind."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def closest_names(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.4)


class Registry(Generic[T]):
    """Name -> object for one kind (reward, advantage, modality, ...).

    `required` lists attributes (for classes/objects) or parameters (for functions) a registered
    object must have; registration fails loudly otherwise. `inputs` names the parameters the engine passes
    itself (tensors, counts); every other keyword parameter is a user option (`options`).
    """

    def __init__(
        self,
        kind: str,
        *,
        builtin_modules: Iterable[str] = (),
        required_attributes: Iterable[str] = (),
        required_parameters: Iterable[str] = (),
        inputs: Iterable[str] = (),
        description: str = "",
    ) -> None:
        self.kind = kind
        self.description = description
        self._inputs = frozenset(inputs)
        self._builtin_modules = tuple(builtin_modules)
        self._required_attributes = tuple(required_attributes)
        self._required_parameters = tuple(required_parameters)
        self._entries: dict[str, T] = {}
        self._by_path: dict[str, T] = {}  # "module:attr" lookups, cached apart so they are not listed as names
        self._builtins_loaded = False
        self._entry_points_loaded = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name or getattr(obj, "name", None) or obj.__name__, obj, override=override)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, override: bool = False) -> None:
        self._check(name, obj)
        if name in self._entries and self._entries[name] is not obj and not override:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered by {_origin(self._entries[name])}; "
                f"pass override=True to replace it"
            )
        self._entries[name] = obj

    def _check(self, name: str, obj: Any) -> None:
        missing = [a for a in self._required_attributes if not _declares(obj, a)]
        if missing:
            raise RegistryError(f"{self.kind} '{name}' ({_origin(obj)}) lacks required attribute(s): {missing}")
        if self._required_parameters and callable(obj):
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                return
            accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            absent = [p for p in self._required_parameters if p not in params]
            if absent and not accepts_kwargs:
                raise RegistryError(
                    f"{self.kind} '{name}' ({_origin(obj)}) must accept parameter(s) {absent}; "
                    f"its signature is {inspect.signature(obj)}"
                )

    # -- options ------------------------------------------------------------------------------
    def options(self, name: str) -> type:
        """The typed options of plugin `name`, a dataclass: the one it declares (an `options` attribute, lerobot's
        registered config classes), else one made from its signature: every keyword parameter that is not an
        engine input (`inputs`), with its annotation (Any where it is not a plain type) and default (none: required).
        `**kwargs` add nothing: an option must be named to exist, so a misspelt one is an error (`check_options`)."""
        obj = self.get(name)
        declared = getattr(obj, "options", None)
        if isinstance(declared, type) and dataclasses.is_dataclass(declared):
            return declared
        try:
            signature = inspect.signature(obj)
            hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
        except (TypeError, ValueError, NameError):
            return dataclasses.make_dataclass(f"{name}_options", [], kw_only=True)
        fields = []
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY) \
                    or parameter.name in self._inputs:
                continue
            hint = hints.get(parameter.name, Any)
            hint = hint if _plain_type(hint) else Any
            if parameter.default is parameter.empty:
                fields.append((parameter.name, hint))
            else:
                default = parameter.default
                fields.append((parameter.name, hint, dataclasses.field(default_factory=lambda d=default: _copy(d))
                               if isinstance(default, (list, dict, set)) else dataclasses.field(default=default)))
        return dataclasses.make_dataclass(f"{name}_options", fields, kw_only=True)

    # -- lookup -------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        if ":" in name:
            return self._by_path[name] if name in self._by_path else self._load_path(name)
        self._load_builtins()
        if name in self._entries:
            return self._entries[name]
        self._load_entry_points()
        if name in self._entries:
            return self._entries[name]
        hint = closest_names(name, self._entries)
        raise RegistryError(
            f"unknown {self.kind} '{name}'"
            + (f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else "")
            + f" Registered: {sorted(self._entries)}"
        )

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except RegistryError:
            return False
        return True

    def names(self) -> list[str]:
        self._load_builtins()
        self._load_entry_points()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def _load_path(self, path: str) -> T:
        module_name, _, attribute = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise RegistryError(f"{self.kind} '{path}': cannot import module '{module_name}': {error}") from error
        obj = module
        for part in attribute.split("."):
            if not hasattr(obj, part):
                raise RegistryError(f"{self.kind} '{path}': module '{module_name}' has no attribute '{attribute}'")
            obj = getattr(obj, part)
        # Importing the module may have registered it under a short name; reuse that object.
        self._check(path, obj)
        self._by_path[path] = obj
        return obj

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry in entry_points(group=f"mmpost.{self.kind}"):
            obj = entry.load()
            # A module entry point registers through its decorators on import; an object registers here.
            if not inspect.ismodule(obj) and entry.name not in self._entries:
                self.add(entry.name, obj)


def _declares(obj: Any, name: str) -> bool:
    """`obj` has attribute `name`, or (a class) declares it as an annotation its instances set in `__init__`."""
    return hasattr(obj, name) or any(name in getattr(k, "__annotations__", {}) for k in getattr(obj, "__mro__", ()))


def _plain_type(hint: Any) -> bool:
    """A hint the config layer checks values against: float, int, bool, str, list, dict, dataclasses, unions of them."""
    if hint in (float, int, bool, str, list, dict, type(None)) or (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(_plain_type(arg) for arg in typing.get_args(hint))
    return origin in (list, dict)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def describe_options(options: type) -> list[tuple[str, str]]:
    """(name, "type = default") for every field of an options dataclass ("type (required)" without a default)."""
    lines = []
    for field in dataclasses.fields(options):
        kind = getattr(field.type, "__name__", None) or str(field.type).replace("typing.", "")
        if field.default is not dataclasses.MISSING:
            lines.append((field.name, f"{kind} = {field.default!r}"))
        elif field.default_factory is not dataclasses.MISSING:
            lines.append((field.name, f"{kind} = {field.default_factory()!r}"))
        else:
            lines.append((field.name, f"{kind} (required)"))
    return lines


def _origin(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


# The kinds. Engine math lives in mmpost.algos; modalities and tasks live in their own folders and are
# found lazily by module name, so the engine never imports them statically.
ADVANTAGES: Registry[Callable] = Registry(
    "advantage", builtin_modules=["mmpost.algos.advantages"], required_parameters=["rewards", "group_ids"],
    inputs=["rewards", "group_ids", "lengths"], description="rewards [N] + group ids [N] -> advantages [N]",
)
POLICY_LOSSES: Registry[Callable] = Registry(
    "policy_loss", builtin_modules=["mmpost.algos.policy_losses"],
    required_parameters=["logprobs", "old_logprobs", "advantages", "mask"],
    inputs=["logprobs", "old_logprobs", "advantages", "mask"], description="per-token policy-gradient loss [N, T]",
)
SFT_LOSSES: Registry[Callable] = Registry(
    "sft_loss", builtin_modules=["mmpost.algos.sft_losses"], required_parameters=["logprobs", "mask"],
    inputs=["logprobs", "mask", "token_exponents", "log_dist", "ref_log_dist"], description="per-token supervised loss [N, T]",
)
KL_ESTIMATORS: Registry[Callable] = Registry(
    "kl", builtin_modules=["mmpost.algos.kl"], required_parameters=["logprobs", "ref_logprobs"],
    description="per-token KL estimate [N, T]",
)
AGGREGATIONS: Registry[Callable] = Registry(
    "aggregation", builtin_modules=["mmpost.algos.aggregation"], required_parameters=["token_loss", "mask"],
    description="[N, T] token losses -> scalar",
)
KL_CONTROLLERS: Registry[Any] = Registry(
    "kl_controller", builtin_modules=["mmpost.algos.kl_control", "mmpost.algos.kl_adversarial"], required_attributes=["update"],
    inputs=["initial_coef"], description="how the KL coefficient evolves (fixed, adaptive, adversarial)",
)
SCHEDULES: Registry[Callable] = Registry(
    "schedule", builtin_modules=["mmpost.algos.schedules"], description="step -> coefficient",
)
REWARDS: Registry[Callable] = Registry(
    "reward", builtin_modules=["mmpost.rewards", "mmpost.search", "mmpost.envs", "mmpost.tasks"], required_parameters=["completions", "samples"],
    description="completions + samples -> list[float | None]",
)
EXPERIENCE_SOURCES: Registry[Any] = Registry(
    "experience_source", builtin_modules=["mmpost.experience", "mmpost.search", "mmpost.envs", "mmpost.tasks"], required_attributes=["collect"],
    description="where trajectories come from: rollouts, labels, demonstrations, search trees",
)
ROLLOUT_BACKENDS: Registry[Any] = Registry(
    "rollout_backend", builtin_modules=["mmpost.rollout.hf", "mmpost.rollout.vllm", "mmpost.denoising"], required_attributes=["generate"],
    # What the builder (or a caller without a policy kind) passes itself; the rest is `rollout.backend_args`. `llm`:
    # a vLLM engine built by the caller, not something a config can hold.
    inputs=["model", "policy", "pad_token_id", "eos_token_ids", "suppressed_token_ids", "llm"],
    description="batched generation with n samples per prompt",
)
MODALITIES: Registry[Any] = Registry(
    "modality", builtin_modules=["mmpost.modalities"], required_attributes=["encode_prompt"],
    description="raw sample -> model inputs, decoded media for rewards",
)
TASKS: Registry[Any] = Registry(
    "task", builtin_modules=["mmpost.tasks"], required_attributes=["load", "prompt", "target"],
    description="dataset + prompt + demonstration + default rewards",
)
MODEL_ZOO: Registry[Callable] = Registry(
    "zoo", builtin_modules=["mmpost.modalities", "mmpost.tasks"], description="tiny real-architecture model builders",
)
ENVIRONMENTS: Registry[Any] = Registry(
    "environment", builtin_modules=["mmpost.envs", "mmpost.tasks"], description="batched, chunked environments for acting policies",
)
POLICIES: Registry[Any] = Registry(
    "policy", builtin_modules=["mmpost.policy", "mmpost.denoising"],
    # mmpost.types.PolicyKind's members (kept literal: the registry imports nothing of the engine)
    required_attributes=["logprob_layouts", "computes_own_kl", "vocabulary", "load_model", "load_processor",
                         "encode_prompts", "logprobs"],
    description="policy kinds: how a model is loaded, prompted, sampled from and re-scored (token, denoising)",
)
SCORERS: Registry[Callable] = Registry("scorer", builtin_modules=["mmpost.eval"], inputs=["predictions", "mode", "judge"],
                                      description="benchmark scorers (options: `eval.score_args.<benchmark>`)")
BENCHMARKS: Registry[Any] = Registry("benchmark", builtin_modules=["mmpost.eval"], description="benchmark loaders")

ALL_REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in [
        ADVANTAGES, POLICY_LOSSES, SFT_LOSSES, KL_ESTIMATORS, KL_CONTROLLERS, AGGREGATIONS, SCHEDULES, REWARDS,
        EXPERIENCE_SOURCES, ROLLOUT_BACKENDS, MODALITIES, TASKS, MODEL_ZOO, ENVIRONMENTS, POLICIES, SCORERS, BENCHMARKS,
    ]
}
