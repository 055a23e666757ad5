"""The registry's reason for a denial or a withdrawal reaches the user of each stock tool,
in its default output (the table in docs/hf-compat.md says where each one shows it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fixtures.repos import publish_folder

WITHDRAWN = "Memorised training images (case 42)"
GATED = "demo/gated is in the 'credentialed' access tier"
LOADERS = """
import sys
kind = sys.argv[1]
for repo in sys.argv[2:]:
    try:
        if kind == "diffusers-subfolder":
            from diffusers import UNet2DConditionModel
            UNet2DConditionModel.from_pretrained(repo, subfolder="unet")
        else:
            from transformers import CLIPTextModel
            CLIPTextModel.from_pretrained(repo, subfolder="text_encoder")
    except OSError as error:  # both replace the hub's error with their own text
        print("TOOL SAID:", str(error).splitlines()[0], file=sys.stderr)
"""


@pytest.fixture
def refusals(registry, live_server, tiny_model_dir, tmp_path) -> dict[str, str]:
    from registry.models import Version
    from registry.publishing.withdrawal import withdraw_version

    publish_folder(registry, "demo/gated", tiny_model_dir, tier="credentialed")
    gone = publish_folder(registry, "demo/gone", tiny_model_dir)
    with registry.sessions() as db, db.begin():
        version = db.scalar(select(Version).where(Version.commit == gone.commit))
        withdraw_version(db, version, WITHDRAWN, actor=None, now=registry.now())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=live_server.url, HF_HUB_CACHE=str(tmp_path / "hf"))
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 or "TOOL SAID" in done.stderr, done.stderr[-2000:]
    return done.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hf_download_prints_the_reason(refusals):
    hf = str(Path(sys.executable).with_name("hf"))
    gated = _run([hf, "download", "demo/gated", "model_index.json"], refusals)
    assert GATED in gated and "You are not logged in" in gated
    gone = _run([hf, "download", "demo/gone", "model_index.json"], refusals)
    assert WITHDRAWN in gone
    bad_token = dict(refusals, HF_TOKEN="rgr_not-a-token-of-this-registry")
    refused = _run([hf, "download", "demo/gated", "model_index.json"], bad_token)
    assert "Invalid credentials in Authorization header" in refused
    assert "not known to this registry" in refused


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("tool", ["diffusers-subfolder", "transformers"])
def test_subfolder_loaders_print_the_reason(refusals, tool):
    said = _run([sys.executable, "-c", LOADERS, tool, "demo/gated", "demo/gone"], refusals)
    assert said.count("TOOL SAID") == 2  # the tool's own words ...
    assert GATED in said and WITHDRAWN in said  # ... and the registry's reasons before them
