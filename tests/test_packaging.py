"""The project's own packaging metadata builds without deprecation warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_building_the_wheel_raises_no_warning_from_our_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", str(ROOT), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    warnings = [
        line.strip()
        for line in output.splitlines()
        if "Warning" in line and "byte-compiling is disabled" not in line
    ]
    assert warnings == [], "\n".join(warnings)
    assert list(tmp_path.glob("roentgen_registry-*.whl"))
