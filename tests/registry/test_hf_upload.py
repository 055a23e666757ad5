"""Uploads from stock hub tools through the Git LFS protocol (no Xet)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from tests.fixtures.repos import publish_folder


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".")
    }


@pytest.fixture
def no_xet(monkeypatch):
    """HF_HUB_DISABLE_XET=1, as the client reads it (at import, into constants)."""
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def publisher(people):
    uid = people.user("pub@mgh.org", institution="mgh", role="publisher")
    return people.token(uid, "write")


def test_upload_folder_creates_the_model_and_publishes_a_signed_version(
    live_server, no_xet, publisher, model_copy, tmp_path
):
    api = HfApi(endpoint=live_server.url, token=publisher)
    url = api.create_repo("hf-tiny")  # the caller's institution is the namespace
    assert url.repo_id == "mgh/hf-tiny"
    info = api.upload_folder(repo_id="mgh/hf-tiny", folder_path=model_copy, commit_message="v1")
    assert info.oid and "/mgh/hf-tiny/commit/" in info.commit_url
    assert api.create_repo("mgh/hf-tiny", exist_ok=True).repo_id == "mgh/hf-tiny"

    model = api.model_info("mgh/hf-tiny")  # open tier: published at once, signed
    assert model.sha == info.oid
    got = snapshot_download("mgh/hf-tiny", endpoint=live_server.url, cache_dir=tmp_path / "hf")
    assert _tree(Path(got)) == _tree(model_copy)

    # A second commit changes one file; the version keeps every other file.
    (model_copy / "scheduler" / "scheduler_config.json").write_text('{"num_train_timesteps": 9}')
    second = api.upload_file(
        path_or_fileobj=model_copy / "scheduler" / "scheduler_config.json",
        path_in_repo="scheduler/scheduler_config.json",
        repo_id="mgh/hf-tiny",
    )
    assert second.oid != info.oid
    files = {s.rfilename for s in api.model_info("mgh/hf-tiny").siblings}
    assert files == set(_tree(model_copy))
    assert [c.commit_id for c in api.list_repo_commits("mgh/hf-tiny")] == [second.oid, info.oid]


def test_a_gated_model_lands_in_review_and_a_bad_card_is_refused(
    live_server, no_xet, publisher, model_copy
):
    api = HfApi(endpoint=live_server.url, token=publisher)
    card = model_copy / "README.md"
    card.write_text(card.read_text().replace("access_tier: open", "access_tier: credentialed"))
    result = api.upload_folder(repo_id="mgh/gated-tiny", folder_path=model_copy)
    assert result.oid
    assert not api.revision_exists("mgh/gated-tiny", "main")  # in review, not yet visible

    # The client checks README.md with /api/validate-yaml first: the registry's card rules.
    card.write_text("no front matter at all\n")
    with pytest.raises(ValueError, match="Invalid metadata in README.md") as refused:
        api.upload_folder(repo_id="mgh/bad-card", folder_path=model_copy)
    assert "access_tier" in str(refused.value)


def test_large_files_go_up_in_parts(live_server, registry, no_xet, publisher, model_copy):
    registry.settings = dataclasses.replace(
        registry.settings, hf_lfs_multipart_threshold=1024, hf_lfs_part_size=256 * 1024
    )
    api = HfApi(endpoint=live_server.url, token=publisher)
    weights = model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size > 3 * 256 * 1024
    api.upload_folder(repo_id="mgh/parts", folder_path=model_copy)
    info = api.model_info("mgh/parts", files_metadata=True)
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["unet/diffusion_pytorch_model.safetensors"] == weights.stat().st_size


def test_xet_clients_are_told_how_to_upload(live_server, publisher, model_copy):
    pytest.importorskip("hf_xet")
    assert not constants.HF_HUB_DISABLE_XET
    api = HfApi(endpoint=live_server.url, token=publisher)
    # hf_xet fetches its token and talks to storage in native code that shows only a status
    # and a URL: the storage URL the registry hands out says what to do.
    with pytest.raises(Exception) as refused:  # noqa: B017 (hf_xet raises ConnectionError)
        api.upload_folder(repo_id="mgh/xet", folder_path=model_copy)
    assert "set-HF_HUB_DISABLE_XET=1-or-use-registry-client-push" in str(refused.value)


def test_lfs_hrefs_authorise_themselves_and_nothing_else(
    client, live_server, no_xet, people, publisher, registry, tiny_model_dir
):
    # Another institution's published weights: knowing their sha256 is not having them.
    publish_folder(registry, "bwh/secret", tiny_model_dir, tier="credentialed")
    weights = tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    oid = hashlib.sha256(weights.read_bytes()).hexdigest()
    headers = {"Authorization": f"Bearer {publisher}"}
    batch = client.post(
        "/mgh/steal.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": 9}]},
        headers=headers,
    )
    assert batch.status_code == 200
    href = batch.json["objects"][0]["actions"]["upload"]["href"]
    forged = href[:-6] + ("AAAAAA" if not href.endswith("AAAAAA") else "BBBBBB")
    assert client.put(forged.replace("http://localhost", ""), data=b"x").status_code == 401
    wrong = client.put(href.replace("http://localhost", ""), data=b"123456789")
    assert wrong.status_code == 422  # not the bytes the ticket names

    api = HfApi(endpoint=live_server.url, token=publisher)
    with pytest.raises(HfHubHTTPError) as claimed:
        api.create_commit(
            "mgh/steal",
            operations=[CommitOperationAdd("README.md", (tiny_model_dir / "README.md"))],
            commit_message="x",
        )
    assert claimed.value.response.status_code == 422  # a card alone is not a model
    raw = client.post(
        "/api/models/mgh/steal/commit/main",
        data=b'{"key":"lfsFile","value":{"path":"w.safetensors","algo":"sha256","oid":"'
        + oid.encode()
        + b'","size":5}}\n{"key":"bogus","value":{"path":"x"}}\n',
        headers={**headers, "Content-Type": "application/x-ndjson"},
    )
    assert raw.status_code == 400 and "unknown operation 'bogus'" in raw.json["error"]
    stolen = client.post(
        "/api/models/mgh/steal/commit/main",
        data=b'{"key":"lfsFile","value":{"path":"w.safetensors","algo":"sha256","oid":"'
        + oid.encode()
        + b'","size":5}}\n',
        headers={**headers, "Content-Type": "application/x-ndjson"},
    )
    assert stolen.status_code == 422
    xet_only = client.post(
        "/mgh/steal.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["xet"], "objects": [{"oid": oid, "size": 9}]},
        headers=headers,
    )
    assert xet_only.status_code == 400 and "HF_HUB_DISABLE_XET=1" in xet_only.json["error"]
    anonymous = client.post("/api/repos/create", json={"name": "x", "organization": "mgh"})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_diffusers_push_to_hub_adds_a_version(
    live_server, no_xet, people, registry, tiny_model_dir, tmp_path
):
    publish_folder(registry, "mgh/pushed", tiny_model_dir, tier="open")
    uid = people.user("pub@mgh.org", institution="mgh", role="publisher")
    token = people.token(uid, "write")
    local = tmp_path / "model"
    shutil.copytree(tiny_model_dir, local)
    script = """
import sys
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1])
pipe.scheduler.register_to_config(steps_offset=7)
print("URL", pipe.push_to_hub("mgh/pushed", commit_message="from diffusers"))
"""
    env = dict(os.environ, HF_ENDPOINT=live_server.url, HF_TOKEN=token, HF_HUB_DISABLE_XET="1")
    env["HF_HOME"] = str(tmp_path / "hf-home")
    done = subprocess.run(
        [sys.executable, "-c", script, str(local)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = HfApi(endpoint=live_server.url)
    commits = api.list_repo_commits("mgh/pushed")
    assert len(commits) == 2
    config = api.hf_hub_download("mgh/pushed", "scheduler/scheduler_config.json")
    assert '"steps_offset": 7' in Path(config).read_text()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hf_upload_cli(live_server, publisher, model_copy, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=live_server.url,
        HF_TOKEN=publisher,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf-home"),
    )
    hf = str(Path(sys.executable).with_name("hf"))
    done = subprocess.run(
        [hf, "upload", "mgh/cli-tiny", str(model_copy), ".", "--commit-message", "first"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = {
        s.rfilename for s in HfApi(endpoint=live_server.url).model_info("mgh/cli-tiny").siblings
    }
    assert files == set(_tree(model_copy))
