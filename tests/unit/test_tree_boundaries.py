"""tests/ and bench/ do not import each other: what both need (Mosquitto start-up, the gateway as a process, ports,
output drains, the message ledger) lives in tools/harness, which imports neither. tests/bench_tools may import
bench: bench is the code those tests test."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_files(folder: str) -> list[Path]:
    return sorted(path for path in (ROOT / folder).rglob("*.py") if "node_modules" not in path.parts)


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def offenders(folder: str, forbidden: set[str], allowed_under: str | None = None) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {', '.join(sorted(imported_packages(path) & forbidden))}"
            for path in python_files(folder)
            if imported_packages(path) & forbidden
            and not (allowed_under and path.is_relative_to(ROOT / allowed_under))]


def test_bench_imports_nothing_from_tests():
    # `helpers` was tests/helpers reached through a sys.path entry pointing into tests/.
    assert offenders("bench", {"tests", "helpers"}) == []


def test_bench_puts_no_test_folder_on_its_path():
    assert [str(path.relative_to(ROOT)) for path in python_files("bench") if "tests" in string_constants(path)] == []


def test_tests_import_bench_only_where_bench_is_the_code_under_test():
    assert offenders("tests", {"bench"}, allowed_under="tests/bench_tools") == []


def test_the_shared_harness_imports_neither_tests_nor_bench():
    assert offenders("tools/harness", {"tests", "bench", "helpers"}) == []
