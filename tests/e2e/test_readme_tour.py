"""The README's terminal tour, run exactly as printed against a live ``make run``.

Each fenced block after a ``<!-- tour -->`` marker runs in its own ``bash -e`` (after the
``export`` lines of the blocks before it, as a terminal keeps them), in a folder
that holds ``.venv`` (this interpreter's environment) and the server's ``instance/``, as a
user's second terminal in the repository would. Only the port changes: the tour's
``127.0.0.1:8000`` becomes the free port ``make run PORT=…`` was started on. What the user
types at a prompt comes from the marker (``<!-- tour input: … -->``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- tour(?: input: (?P<input>.*?))? -->\n```bash\n(?P<code>.*?)\n```", re.S)
VENV = Path(sys.prefix)


def tour_blocks(readme: str) -> list[tuple[str, str]]:
    """(code, typed input) for each tour block, in order."""
    return [(m["code"], m["input"] or "") for m in BLOCK.finditer(readme)]


def test_the_readme_has_a_tour_for_each_part() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    commands = "\n".join(code for code, _ in blocks)
    for step in ("registry-client pull", "generate", "api/v1/register", "create-admin"):
        assert step in commands, f"the README tour lost its {step!r} step"


@pytest.fixture
def make_run(tmp_path: Path):
    """``make run`` on a free port with its instance in ``tmp_path``; stopped with Ctrl-C."""
    if not (VENV / ".installed-stamp").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{VENV} was not installed by `make install`")
        pytest.skip("needs the environment `make install` builds")
    port = free_port()
    env = {
        **_user_env(tmp_path),
        "REGISTRY_INSTANCE_PATH": str(tmp_path / "instance"),
        "OMP_NUM_THREADS": "2",
    }
    log = (tmp_path / "make-run.log").open("w")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", f"VENV={VENV}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "make-run.log").read_text()
            try:
                if requests.get(f"{url}/api/v1/ping", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("make run did not answer within 120 s")
        yield url, port, tmp_path / "make-run.log"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _user_env(home: Path) -> dict[str, str]:
    """A user's shell: their own home and caches, no registry settings."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        "HOME": str(home / "home"),
        "XDG_CONFIG_HOME": str(home / "home" / ".config"),
        "XDG_CACHE_HOME": str(home / "home" / ".cache"),
        "HF_HOME": str(home / "home" / ".cache" / "huggingface"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def test_the_readme_tour_runs_as_printed_against_make_run(make_run) -> None:
    url, port, log = make_run
    printed = log.read_text()
    # make run prints the steps with the URL it serves on.
    assert f"export REGISTRY_URL=http://127.0.0.1:{port}" in printed, printed
    assert "registry-server create-admin" in printed and "/register" in printed

    terminal = log.parent
    (terminal / ".venv").symlink_to(VENV)
    env = {**_user_env(terminal), "OMP_NUM_THREADS": "2"}
    exports: list[str] = []  # the user's terminal keeps what earlier blocks exported
    for code, typed in tour_blocks((ROOT / "README.md").read_text(encoding="utf-8")):
        code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        script = "\n".join([*exports, code])
        exports += [line for line in code.splitlines() if line.startswith("export ")]
        ran = subprocess.run(
            ["bash", "-e", "-c", script], cwd=terminal, env=env, input=f"{typed}\n",
            capture_output=True, text=True, timeout=300,
            start_new_session=True,  # no terminal: prompts read what the user types from stdin
        )  # fmt: skip
        assert ran.returncode == 0, f"tour block failed:\n{script}\n{ran.stdout}\n{ran.stderr}"

    generated = sorted(p.name for p in (terminal / "generated").glob("*.png"))
    assert "00000-seed0.png" in generated and "00001-seed1.png" in generated
