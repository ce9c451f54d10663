"""The package's layers (docs/architecture.md): which folder may import which."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ocpp_gw"

# folder -> the folders of ocpp_gw it may import from (besides itself); the top level may import anything.
ALLOWED = {
    "protocol": set(),
    "netio": set(),
    "chargers": {"protocol", "netio"},
    "mqtt": {"protocol", "netio"},
    "auth": {"protocol"},
    "admin": {"protocol", "auth"},
}
VERSION_ONLY = {"ocpp_gw"}  # `from .. import __version__`: the package's own version string


def _imports(path: Path) -> set[str]:
    """The ocpp_gw modules (dotted) that the module at `path` imports."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module and node.module.split(".")[0] == "ocpp_gw":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ocpp_gw")
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_each_folder_imports_only_the_layers_below_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        folder = _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if folder is None:
            continue  # the top level wires everything
        for module in _imports(path):
            target = _layer(module)
            if module in VERSION_ONLY or target == folder or target in ALLOWED[folder]:
                continue
            wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)
