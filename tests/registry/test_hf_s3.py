"""With an S3 store, downloads are 302 redirects to short-lived presigned URLs while the
registry's own response keeps the Hugging Face metadata headers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
from huggingface_hub import hf_hub_download, snapshot_download

from tests.conftest import make_settings
from tests.fixtures.repos import publish_folder


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_storage_url: str):

    return make_settings(database_url, tmp_path, storage_url=s3_storage_url)


def test_get_resolve_redirects_to_a_presigned_url_with_metadata(
    live_server, registry, tiny_model_dir
):
    published = publish_folder(registry, "demo/s3", tiny_model_dir)
    weights = "unet/diffusion_pytorch_model.safetensors"
    data = (tiny_model_dir / weights).read_bytes()
    url = f"{live_server.url}/demo/s3/resolve/main/{weights}"

    response = requests.get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 302
    assert response.headers["X-Repo-Commit"] == published.commit
    assert response.headers["X-Linked-Etag"].strip('"') == hashlib.sha256(data).hexdigest()
    assert int(response.headers["X-Linked-Size"]) == len(data)
    location = response.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=" in location

    assert requests.get(location, timeout=30).content == data
    ranged = requests.get(location, headers={"Range": "bytes=8-15"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == data[8:16]

    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers["X-Repo-Commit"] == published.commit


def test_huggingface_hub_follows_the_redirect(live_server, registry, tiny_model_dir, tmp_path):
    publish_folder(registry, "demo/s3", tiny_model_dir)
    path = snapshot_download("demo/s3", endpoint=live_server.url, cache_dir=tmp_path / "hf")
    for file in tiny_model_dir.rglob("*.safetensors"):
        rel = file.relative_to(tiny_model_dir)
        assert (Path(path) / rel).read_bytes() == file.read_bytes()
    one = hf_hub_download(
        "demo/s3", "model_index.json", endpoint=live_server.url, cache_dir=tmp_path / "hf2"
    )
    assert Path(one).read_bytes() == (tiny_model_dir / "model_index.json").read_bytes()
