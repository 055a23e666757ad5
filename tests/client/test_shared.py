"""The rules client and registry share import only the standard library and PyYAML, and
both sides use the same objects (issue 15)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"
SHARED = CLIENT / "shared"


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
    assert {f.stem for f in files} >= {"rules", "safetensors_header", "model_card", "validation"}
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


def test_the_client_never_imports_the_registry():
    """No module under client/ imports ``registry`` (the validator included), at any depth."""
    files = sorted(CLIENT.rglob("*.py"))
    assert any(f.name == "push.py" for f in files)
    offenders = {
        f"{path.relative_to(CLIENT)}: {name}"
        for path in files
        for name in _imports(path)
        if name.split(".")[0] == "registry"
    }
    assert not offenders, sorted(offenders)


def test_push_validates_a_folder_with_the_registry_unimportable(tmp_path: Path):
    """``validate_local`` (what ``push`` runs first) works where ``registry`` cannot import."""
    (tmp_path / "model.bin").write_bytes(b"pickle")
    script = (
        "import sys\n"
        "sys.modules['registry'] = None\n"
        "from client.errors import ValidationError\n"
        "from client.push import validate_local\n"
        "try:\n"
        f"    validate_local(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "except ValidationError as error:\n"
        "    print(dict(error.problems)['model.bin'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "pickle" in result.stdout.lower()


def test_the_server_and_the_client_run_the_same_validator():
    from client import push
    from client.shared import validation
    from registry.publishing import commit, importer
    from registry.publishing import validation as server

    assert push.validate_folder is server.validate_folder is validation.validate_folder
    assert commit.validate_version is importer.validate_version is validation.validate_version
    assert server.Problem is validation.Problem
