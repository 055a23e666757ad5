"""Local OS errors (disk full, read-only file system) end the CLI with one line and exit
code 11, not a traceback (issue 15)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.client.conftest import run_cli


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fault", ["disk-full", "read-only"])
def test_pull_onto_a_full_or_read_only_disk_prints_one_line(
    counted_server, open_tiny, client_dirs, tiny_disk, fault
):
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk.path)], check=True)
    env = dict(os.environ, REGISTRY_CACHE_DIR=str(tiny_disk.path / "cache"))
    done = run_cli("--url", counted_server.url, "pull", open_tiny.repo_id, "-q", env=env)
    assert done.returncode == 11, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("Pinned ")]
    assert len(lines) == 1, done.stderr
    expected = "disk is full" if fault == "disk-full" else "read-only"
    assert lines[0].startswith("error: Local file error") and expected in lines[0]
    assert "Traceback" not in done.stderr
