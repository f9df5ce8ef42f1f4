"""The dependency direction holds: only plugin/ imports backtrader; networks/ and training/ are pure."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nt_backtrader"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_only_the_plugin_imports_backtrader():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.parent.name != "plugin" and any(m.split(".")[0] == "backtrader" for m in imported_modules(p))]
    assert offenders == []


def test_networks_and_training_stay_away_from_backtrader_and_the_plugin():
    checked = 0
    for folder, banned in (("networks", ("backtrader", "pandas", "plugin", "training")),
                           ("training", ("backtrader", "plugin"))):
        for path in (PACKAGE / folder).rglob("*.py"):
            checked += 1
            for module in imported_modules(path):
                assert not any(part in banned for part in module.lstrip(".").split(".")), (path, module)
    assert checked >= 8


def test_plugin_never_imports_training():
    for path in (PACKAGE / "plugin").rglob("*.py"):
        assert not any("training" in m.split(".") for m in imported_modules(path)), path
