"""The rules client and registry share import only the standard library and PyYAML, and
both sides use the same objects (issue 15)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "client" / "shared"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_shared_rules_import_only_the_standard_library_and_pyyaml():
    """Every import (at the top or inside a function) is stdlib, PyYAML or client.shared."""
    files = sorted(SHARED.glob("*.py"))
    assert {f.stem for f in files} >= {"rules", "safetensors_header", "model_card"}
    for path in files:
        outside = {
            name
            for name in _imports(path)
            if name.split(".")[0] not in sys.stdlib_module_names
            and name.split(".")[0] != "yaml"
            and not name.startswith("client.shared")
        }
        assert not outside, f"{path.name} imports {sorted(outside)}"


def test_client_and_registry_apply_the_same_rules():
    from client import cache, manifest
    from client.shared import rules
    from registry.publishing import publish, sessions
    from registry.repos import services

    assert services.NAME_RE is cache.NAME_RE is rules.NAME_RE
    assert sessions.SHA256_RE is cache.SHA256_RE is rules.SHA256_RE
    assert publish.canonical_bytes is manifest.canonical_bytes is rules.canonical_bytes
    assert rules.NAME_RE.match("x\n") is None and rules.parse_id("²") is None
