"""A withdrawn version reaches copies as far as the protocol allows: ``revision`` and
``tree`` answer 410 ``RevisionNotFound`` with the reason, so stock huggingface_hub refuses
a tag it already holds in its cache instead of loading it without a word."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from huggingface_hub import snapshot_download
from huggingface_hub.errors import RevisionNotFoundError

from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

REASON = "Memorised a patient identifier in generated images"


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
