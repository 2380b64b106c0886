"""Rules the suite keeps: each test module stands alone (what modules share lives in helper
modules, not in another test module), and no test leans on the benchmarks' harness."""
from __future__ import annotations

import ast

from helpers import ROOT

TESTS = ROOT / "tests"


def _imports(path) -> set[str]:
    """The top-level names of every module that `path` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {name.split(".")[0] for name in names}


def _test_modules():
    return sorted(TESTS.rglob("test_*.py"))


def test_no_test_module_imports_another_test_module():
    found = {f"{path.relative_to(ROOT)} imports {name}"
             for path in _test_modules() for name in _imports(path)
             if name.startswith("test_")}
    assert not found, sorted(found)


def test_no_test_imports_the_benchmarks():
    found = {str(path.relative_to(ROOT)) for path in TESTS.rglob("*.py")
             if "node_modules" not in path.parts and "benchmarks" in _imports(path)}
    assert not found, sorted(found)
