"""The apps depend one way, students ← verification ← notices (docs/architecture.md).

A lower app never imports a higher one, not even inside a function: it sends a signal, and a page that shows a
higher app's data loads that app's template tags.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HIGHER = {"students": {"verification", "notices"}, "verification": {"notices"}}


def imported_apps(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("app", sorted(HIGHER))
def test_a_lower_app_never_imports_a_higher_one(app):
    offending = {
        path.relative_to(ROOT).as_posix(): sorted(imported_apps(path) & HIGHER[app])
        for path in (ROOT / app).rglob("*.py")
        if "tests" not in path.relative_to(ROOT / app).parts
    }
    assert {path: apps for path, apps in offending.items() if apps} == {}
