"""The compatibility matrix: the HF read tests and an LFS upload, run by an older stock
huggingface_hub (0.3x) in a side venv, so protocol drift between client versions shows.

The venv is built once under a cache folder (``REGISTRY_TEST_CACHE``, default
``~/.cache/roentgen-registry``) and reused. Without network the test is skipped, except
under ``CI=1``, where it fails: CI must notice drift, not skip it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from tests.fixtures.repos import publish_folder

OLD_HUB = "0.35.3"
SCRIPT = Path(__file__).with_name("hf_compat_script.py")


def _cache_root() -> Path:
    default = Path.home() / ".cache" / "roentgen-registry"
    return Path(os.environ.get("REGISTRY_TEST_CACHE", default))


@pytest.fixture(scope="session")
def old_hub_python() -> Path:
    """A venv with huggingface_hub ``OLD_HUB`` (built on first use, then cached)."""
    root = _cache_root() / f"huggingface_hub-{OLD_HUB}"
    python = root / "bin" / "python"
    marker = root / ".complete"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{root}.lock", timeout=900):
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"huggingface_hub=={OLD_HUB}"],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                reason = f"cannot install huggingface_hub {OLD_HUB}: {done.stderr[-800:]}"
                if os.environ.get("CI"):
                    pytest.fail(reason)
                pytest.skip(reason + " (offline?)")
            marker.write_text(OLD_HUB)
    return python


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_older_hub_client_reads_and_uploads(
    old_hub_python, live_server, registry, people, tiny_model_dir, tmp_path
):
    published = publish_folder(registry, "demo/tiny", tiny_model_dir)
    publish_folder(registry, "demo/gated", tiny_model_dir, tier="credentialed")
    token = people.token(people.user("pub@mgh.org", institution="mgh", role="publisher"), "write")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    # 0.3x parses the commit URL against HF_ENDPOINT (not the endpoint= argument).
    env.update(
        HF_ENDPOINT=live_server.url,
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(tmp_path / "hf-home"),
    )
    done = subprocess.run(
        [
            str(old_hub_python),
            str(SCRIPT),
            live_server.url,
            "demo/tiny",
            "demo/gated",
            token,
            str(tiny_model_dir),
            str(tmp_path / "cache"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["version"] == OLD_HUB
    files = sorted(
        p.relative_to(tiny_model_dir).as_posix() for p in tiny_model_dir.rglob("*") if p.is_file()
    )
    assert out["snapshot_files"] == files
    assert out["one_file"] == "model_index.json"
    assert out["sha"] == published.commit
    assert out["tier_filter"] == ["demo/gated"] and out["gated_only"] == ["demo/gated"]
    assert out["refs"] == ["main", "v1"]
    assert out["commits"] == [published.commit]
    assert out["paths_info"] == ["README.md", "unet"]
    assert out["pr_exists"] is False
    assert out["fs_exists"] is True and "demo/tiny/unet/config.json" in out["fs_glob"]
    assert out["case_redirect"] == "demo/tiny"
    assert "credentialed" in out["gated_error"]
    assert out["missing"] == "RepositoryNotFoundError"
    assert out["uploaded"] and out["uploaded_files"] == files
