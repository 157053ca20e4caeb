"""Import direction: mmpost (engine) <- modalities <- tasks <- recipes; eval may use all.

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
