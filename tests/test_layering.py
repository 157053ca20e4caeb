"""Import structure: mmpost (engine) <- modalities <- tasks <- recipes, eval may use all; and no import cycles.

Parses every module's imports (module level and inside functions) without importing anything.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "mmpost": ("mmpost.modalities", "mmpost.tasks", "mmpost.eval"),
    "modalities": ("mmpost.tasks", "mmpost.eval"),
    "tasks": ("mmpost.eval",),
}
# Where each top-level folder lives in the one `mmpost` namespace (setup.py's FOLDER_TO_PACKAGE).
PACKAGES = {"mmpost": "mmpost", "modalities": "mmpost.modalities", "tasks": "mmpost.tasks", "eval": "mmpost.eval"}


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_engine_never_imports_modalities_tasks_or_eval():
    violations = []
    for folder, forbidden in FORBIDDEN.items():
        for path in (ROOT / folder).rglob("*.py"):
            for module in imported_modules(path):
                if module.startswith(forbidden) or module.split(".")[0] in ("modalities", "tasks", "eval"):
                    violations.append(f"{path.relative_to(ROOT)} imports {module}")
    assert violations == []


# -- import cycles ----------------------------------------------------------------------------------
def project_modules(root: Path, packages: dict[str, str]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__) for every .py file under the mapped folders."""
    modules = {}
    for folder, package in packages.items():
        for path in (root / folder).rglob("*.py"):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join([package] + (parts[:-1] if is_package else parts))
            modules[name] = (path, is_package)
    return modules


def import_graph(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """Module -> the project modules it imports, at module level or inside functions (a lazy import still ties
    the two modules together). Importing `a.b.c` also runs the `__init__` of `a.b` unless the importer lives
    inside `a.b` itself (its own packages are always initialised first, so that is no cycle)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, (path, is_package) in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # `from package import module` imports the module
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else known(base))
        own_packages = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)} | ({name} if is_package else set())
        for target in list(targets - {None}):
            parts = target.split(".")
            targets.update(p for p in (".".join(parts[:k]) for k in range(1, len(parts))) if p in modules and p not in own_packages)
        graph[name] = targets - {None, name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_anywhere_in_the_project():
    graph = import_graph(project_modules(ROOT, PACKAGES))
    assert len(graph) > 100  # the walk found the project
    cycles = import_cycles(graph)
    assert cycles == [], "\n".join(
        " <-> ".join(cycle) + "\n    " + "\n    ".join(f"{m} imports {sorted(graph[m] & set(cycle))}" for m in cycle)
        for cycle in cycles)


def test_cycle_finder_sees_lazy_imports_and_package_inits(tmp_path):
    """The cycle kinds this project had: two modules importing each other inside functions, and two sibling
    packages whose modules import each other's package (its __init__ imports the importer back)."""
    files = {
        "mmpost/__init__.py": "",
        "mmpost/a.py": "def f():\n    from mmpost.b import g\n",
        "mmpost/b.py": "def g():\n    from mmpost import a\n",
        "mmpost/c.py": "from mmpost import a\n",  # imports into the cycle, is not part of it
        "modalities/__init__.py": "",
        "modalities/image/__init__.py": "from .adapter import X\n",
        "modalities/image/adapter.py": "def load():\n    from mmpost.modalities.video.budget import B\n",
        "modalities/video/__init__.py": "from .adapter import Y\n",
        "modalities/video/adapter.py": "from mmpost.modalities.image.adapter import X\n",
        "modalities/video/budget.py": "B = 1\n",
        "modalities/audio/__init__.py": "from . import adapter\n",
        "modalities/audio/adapter.py": "from ..image import adapter\n",  # one direction only: no cycle
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(project_modules(tmp_path, {"mmpost": "mmpost", "modalities": "mmpost.modalities"}))
    assert sorted(import_cycles(graph)) == [
        ["mmpost.a", "mmpost.b"],
        ["mmpost.modalities.image", "mmpost.modalities.image.adapter", "mmpost.modalities.video",
         "mmpost.modalities.video.adapter"],
    ]
