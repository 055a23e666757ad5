"""A withdrawn version reaches copies as far as the protocol allows: ``revision`` and
``tree`` answer 410 ``RevisionNotFound`` with the reason, so stock huggingface_hub refuses
a tag it already holds in its cache instead of loading it without a word."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from huggingface_hub import snapshot_download
from huggingface_hub.errors import RevisionNotFoundError

from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

REASON = "Memorised a patient identifier in generated images"
# Older huggingface_hub releases, each in a side venv built once and cached beside the
# trainer's (tests/trainer/side_venv.py); REGISTRY_TEST_HF_RELEASES overrides the list.
SIDE_RELEASES = os.environ.get("REGISTRY_TEST_HF_RELEASES", "0.29.3,0.36.0").split(",")
SIDE_SCRIPT = """
import sys
from huggingface_hub import __version__, snapshot_download
from huggingface_hub.utils import RevisionNotFoundError
endpoint, cache, expect = sys.argv[1:4]
try:
    path = snapshot_download("mgh/cxr", revision="v2", endpoint=endpoint, cache_dir=cache)
except RevisionNotFoundError as error:
    print(f"{__version__} RevisionNotFoundError: {error}")
    sys.exit(0 if expect == "refused" else 1)
print(f"{__version__} loaded {path}")
sys.exit(0 if expect == "loaded" else 1)
"""


def test_a_cached_tag_of_a_withdrawn_version_raises_revision_not_found(
    registry, live_server, tiny_model_dir: Path, tmp_path: Path
):
    files = folder_files(tiny_model_dir)
    api = UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                    url=live_server.url)  # fmt: skip
    assert api.publish("mgh/cxr", files, tier="open", tag="v1").status == 200
    v2 = api.publish("mgh/cxr", {**files, "notes.txt": b"v2"}, tag="v2").body["version"]
    cache = tmp_path / "hf"
    held = Path(snapshot_download("mgh/cxr", revision="v2", endpoint=live_server.url,
                                  cache_dir=cache))  # fmt: skip
    assert (held / "notes.txt").read_bytes() == b"v2"

    path = f"/api/v1/models/mgh/cxr/versions/{v2['commit']}/withdraw"
    assert api.call("POST", path, json={"reason": REASON}).status == 200
    for route in ("revision/v2", f"revision/{v2['commit']}", "tree/v2", "tree/v2/unet"):
        reply = requests.get(f"{live_server.url}/api/models/mgh/cxr/{route}", timeout=30)
        assert reply.status_code == 410, (route, reply.text)
        assert reply.headers["X-Error-Code"] == "RevisionNotFound"
        assert REASON in reply.headers["X-Error-Message"]
    assert requests.get(f"{live_server.url}/api/models/mgh/cxr/revision/v1", timeout=30).ok

    with pytest.raises(RevisionNotFoundError, match=REASON):
        snapshot_download("mgh/cxr", revision="v2", endpoint=live_server.url, cache_dir=cache)


def hub_venv_python(release: str) -> Path:
    """A cached venv holding only huggingface_hub ``release`` (and what it depends on)."""
    import fcntl

    from tests.trainer.side_venv import VENVS

    folder = VENVS / f"huggingface-hub-{release}-py{sys.version_info[0]}{sys.version_info[1]}"
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / "huggingface-hub.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").is_file():
            python = str(folder / "bin" / "python")
            for step in ([sys.executable, "-m", "venv", "--clear", str(folder)],
                         [python, "-m", "pip", "install", "--quiet",
                          f"huggingface_hub=={release}"]):  # fmt: skip
                done = subprocess.run(step, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    reason = f"cannot build a huggingface_hub {release} venv: {done.stderr[-500:]}"
                    if os.environ.get("CI"):  # CI reaches the package index: a failure is real
                        pytest.fail(reason)
                    pytest.skip(reason)
            (folder / ".complete").write_text(release + "\n", "utf-8")
    return folder / "bin" / "python"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the client is the point
@pytest.mark.parametrize("release", SIDE_RELEASES)
def test_older_huggingface_hub_releases_refuse_a_cached_withdrawn_tag(
    release: str, registry, live_server, tiny_model_dir: Path, tmp_path: Path
):
    python = str(hub_venv_python(release))
    files = folder_files(tiny_model_dir)
    api = UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                    url=live_server.url)  # fmt: skip
    assert api.publish("mgh/cxr", files, tier="open", tag="v1").status == 200
    v2 = api.publish("mgh/cxr", {**files, "notes.txt": b"v2"}, tag="v2").body["version"]
    cache = str(tmp_path / "hf")

    def side(expect: str) -> str:
        done = subprocess.run([python, "-c", SIDE_SCRIPT, live_server.url, cache, expect],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(release)
        return done.stdout

    assert "loaded" in side("loaded")
    path = f"/api/v1/models/mgh/cxr/versions/{v2['commit']}/withdraw"
    assert api.call("POST", path, json={"reason": REASON}).status == 200
    assert REASON in side("refused")


DIFFUSERS_SCRIPT = """
import logging, sys
from diffusers import DiffusionPipeline
logging.basicConfig(level=logging.WARNING)
pipe = DiffusionPipeline.from_pretrained("mgh/cxr", revision="v2", cache_dir=sys.argv[1])
print("LOADED", type(pipe).__name__)
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # slow: one database
def test_diffusers_loads_a_cached_withdrawn_version_but_shows_the_reason(
    registry, live_server, tiny_model_dir: Path, tmp_path: Path
):
    """The limit of the protocol: diffusers treats any Hub error as "offline" and falls
    back to its cache, so the most a server can do is put the reason in its warning (the
    README tells users to delete withdrawn copies and never share a cache)."""
    files = folder_files(tiny_model_dir)
    api = UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                    url=live_server.url)  # fmt: skip
    assert api.publish("mgh/cxr", files, tier="open", tag="v1").status == 200
    v2 = api.publish("mgh/cxr", {**files, "notes.txt": b"v2"}, tag="v2").body["version"]
    cache = str(tmp_path / "hf")
    env = {**os.environ, "HF_ENDPOINT": live_server.url, "HF_HUB_DISABLE_TELEMETRY": "1"}

    def load() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", DIFFUSERS_SCRIPT, cache], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    first = load()
    assert "LOADED" in first.stdout, first.stderr[-2000:]
    path = f"/api/v1/models/mgh/cxr/versions/{v2['commit']}/withdraw"
    assert api.call("POST", path, json={"reason": REASON}).status == 200
    again = load()
    assert REASON in again.stderr, again.stderr[-2000:]
