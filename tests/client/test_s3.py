"""With an S3 store the registry redirects downloads to presigned URLs: the client follows
them without sending its token to the object store, resumes with Range there too, and still
verifies every byte against the signed manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.connection

from client.errors import HashMismatch
from tests.conftest import make_settings
from tests.fixtures.repos import publish_folder

UNET = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_storage_url: str):

    return make_settings(database_url, tmp_path, storage_url=s3_storage_url)


def test_pull_through_presigned_redirects_resumes_and_verifies(
    registry, people, make_client, counted_server, client_dirs, tiny_model_dir, monkeypatch
):
    published = publish_folder(registry, "demo/s3", tiny_model_dir)
    sent: list[tuple[str, str, bool]] = []
    original = urllib3.connection.HTTPConnection.request

    def recording(self, method, url, body=None, headers=None, **kwargs):
        sent.append((f"{self.host}:{self.port}", url, "Authorization" in (headers or {})))
        return original(self, method, url, body, headers or {}, **kwargs)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "request", recording)
    data = (tiny_model_dir / UNET).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    partial = client_dirs["cache"] / "incomplete" / f"{sha}.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[: len(data) // 3])  # as a killed earlier run would leave it

    client = make_client(people.token(people.user("res@uni.edu"), "read"))
    result = client.pull("demo/s3", quiet=True)

    assert result.commit == published.commit
    assert (result.path / UNET).read_bytes() == data
    assert (
        result.bytes_fetched
        == sum(p.stat().st_size for p in tiny_model_dir.rglob("*") if p.is_file()) - len(data) // 3
    )
    statuses = {s for m, p, s in counted_server.traffic.requests if "/resolve/" in p}
    assert statuses == {302}  # every body came from the object store
    registry_host = counted_server.url.removeprefix("http://")
    resolves = [(host, auth) for host, url, auth in sent if "/resolve/" in url]
    assert {auth for host, auth in resolves if host == registry_host} == {True}
    to_s3 = [auth for host, url, auth in sent if host != registry_host]
    assert to_s3 and not any(to_s3)  # the object store never sees the registry token


def test_a_blob_corrupted_in_the_bucket_is_refused(
    registry, make_client, client_dirs, tiny_model_dir, s3_storage_url
):
    import boto3

    publish_folder(registry, "demo/s3", tiny_model_dir)
    sha = hashlib.sha256((tiny_model_dir / UNET).read_bytes()).hexdigest()
    parts = urlsplit(s3_storage_url)
    s3 = boto3.client("s3", endpoint_url=parse_qs(parts.query)["endpoint"][0])
    bucket = parts.netloc
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if sha in o["Key"]]
    size = (tiny_model_dir / UNET).stat().st_size
    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"\0" * size)

    client = make_client()
    with pytest.raises(HashMismatch):
        client.pull("demo/s3", quiet=True)
    assert not client.cache.blob_path(sha).exists()
