"""File names outside latin-1 publish and download (RFC 6266/5987 Content-Disposition), and
only a download that is sent is audited (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

from huggingface_hub import hf_hub_download
from sqlalchemy import func, select

from tests.fixtures.repos import publish_folder

NAME = "weights/模型.safetensors"


def _downloads(registry, path: str) -> int:
    from registry.models import AuditEvent

    with registry.sessions() as db:
        query = select(func.count()).where(
            AuditEvent.tag == "version:download", AuditEvent.target.like(f"%/{path}")
        )
        return db.scalar(query)


def test_a_file_named_outside_latin1_publishes_and_downloads_through_huggingface_hub(
    registry, live_server, tiny_model_dir, tmp_path
):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    weights = next(folder.rglob("*.safetensors"))
    (folder / "weights").mkdir()
    shutil.copy(weights, folder / NAME)
    published = publish_folder(registry, "demo/unicode", folder)

    local = hf_hub_download(
        published.repo_id, NAME, endpoint=live_server.url, cache_dir=tmp_path / "hf"
    )
    assert Path(local).read_bytes() == (folder / NAME).read_bytes()
    assert _downloads(registry, NAME) == 1

    client = live_server.app.test_client()
    url = f"/{published.repo_id}/resolve/v1/{quote(NAME)}"
    head = client.head(url)
    assert head.status_code == 200
    disposition = head.headers["Content-Disposition"]
    assert disposition.startswith("inline; filename=")
    assert "filename*=UTF-8''" + quote("模型.safetensors") in disposition
    assert _downloads(registry, NAME) == 1  # a HEAD is not a download


def test_a_get_that_cannot_send_the_blob_is_not_audited(registry, client, open_model):
    from registry.models import File, Version

    with registry.sessions() as db:
        version = db.scalar(select(Version).where(Version.commit == open_model.commit))
        file = db.scalar(
            select(File).where(File.version_id == version.id, File.path.like("%.json"))
        )
        path, sha256 = file.path, file.sha256
    blob = registry.blobs.local_path(sha256)
    Path(blob).unlink()
    response = client.get(f"/{open_model.repo_id}/resolve/v1/{path}")
    assert response.status_code == 503
    assert _downloads(registry, path) == 0
