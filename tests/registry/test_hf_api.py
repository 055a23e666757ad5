"""The Hugging Face compatible read API, driven by the stock huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): _sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".")
    }


@pytest.mark.parametrize("revision", ["main", "v1", "commit"])
def test_snapshot_download_matches_the_imported_folder(
    live_server, open_model, tiny_model_dir, tmp_path, revision
):
    rev = open_model.commit if revision == "commit" else revision
    path = snapshot_download(
        open_model.repo_id, revision=rev, endpoint=live_server.url, cache_dir=tmp_path / "hf"
    )
    assert _tree(Path(path)) == _tree(tiny_model_dir)
    assert Path(path).name == open_model.commit


def test_hf_hub_download_one_file_and_model_info(live_server, open_model, tiny_model_dir, tmp_path):
    local = hf_hub_download(
        open_model.repo_id,
        "unet/config.json",
        revision="v1",
        endpoint=live_server.url,
        cache_dir=tmp_path / "hf",
    )
    assert Path(local).read_bytes() == (tiny_model_dir / "unet/config.json").read_bytes()

    api = HfApi(endpoint=live_server.url)
    info = api.model_info(open_model.repo_id)
    assert info.sha == open_model.commit
    assert {s.rfilename for s in info.siblings} == set(_tree(tiny_model_dir))
    assert info.card_data["access_tier"] == "open"

    entries = list(api.list_repo_tree(open_model.repo_id, recursive=True, revision="v1"))
    files = {e.path: e for e in entries if e.__class__.__name__ == "RepoFile"}
    assert set(files) == set(_tree(tiny_model_dir))
    weights = next(p for p in files if p.endswith(".safetensors"))
    assert files[weights].lfs.sha256 == _sha256(tiny_model_dir / weights)
    top = {e.path for e in api.list_repo_tree(open_model.repo_id)}
    assert "unet" in top and "unet/config.json" not in top


def test_missing_repo_revision_and_file_raise_the_right_errors(live_server, open_model, tmp_path):
    kwargs = {"endpoint": live_server.url, "cache_dir": tmp_path / "hf"}
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("demo/does-not-exist", "model_index.json", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(open_model.repo_id, "model_index.json", revision="v9", **kwargs)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(open_model.repo_id, "unet/nothing.json", **kwargs)


def test_gated_model_raises_gated_repo_error_with_a_reason(live_server, gated_model, tmp_path):
    with pytest.raises(GatedRepoError) as excinfo:
        hf_hub_download(
            gated_model.repo_id,
            "model_index.json",
            endpoint=live_server.url,
            cache_dir=tmp_path / "hf",
        )
    assert "credentialed" in str(excinfo.value)


def test_tree_is_paginated_with_link_headers(client, open_model):
    url = f"/api/models/{open_model.repo_id}/tree/main?recursive=true&limit=3"
    seen: list[str] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = response.json
        assert len(page) <= 3
        seen += [e["path"] for e in page]
        link = response.headers.get("Link")
        url = link.split(";")[0].strip("<>").replace("http://localhost", "") if link else ""
    full = client.get(f"/api/models/{open_model.repo_id}/tree/main?recursive=true").json
    assert seen == [e["path"] for e in full]


def test_ranged_get_and_head(client, open_model, tiny_model_dir):
    weights = "unet/diffusion_pytorch_model.safetensors"
    data = (tiny_model_dir / weights).read_bytes()
    url = f"/{open_model.repo_id}/resolve/main/{weights}"

    head = client.head(url)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["X-Repo-Commit"] == open_model.commit
    assert head.headers["X-Linked-Etag"].strip('"') == hashlib.sha256(data).hexdigest()
    assert int(head.headers["X-Linked-Size"]) == len(data)
    assert head.headers["Accept-Ranges"] == "bytes"

    for header, expected in [
        ("bytes=0-99", data[:100]),
        ("bytes=100-", data[100:]),
        ("bytes=-50", data[-50:]),
        (f"bytes=10-{len(data) * 2}", data[10:]),
    ]:
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.data == expected, header
    whole = client.get(url)
    assert whole.status_code == 200 and whole.data == data


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/models/demo/nope", 404, "RepoNotFound"),
        ("/api/models/demo/tiny/revision/v7", 404, "RevisionNotFound"),
        ("/api/models/demo/tiny/revision/" + "a" * 40, 404, "RevisionNotFound"),
        ("/demo/tiny/resolve/main/nope.json", 404, "EntryNotFound"),
        ("/demo/tiny/resolve/main/unet/../model_index.json", 400, "BadRequest"),
        ("/demo/tiny/resolve/main/%2Fetc%2Fpasswd", 400, "BadRequest"),
        ("/demo/tiny/resolve/main/a%5Cb", 400, "BadRequest"),
        ("/api/models/Demo%20X/tiny", 400, "BadRequest"),
        ("/api/models?limit=100000", 400, "BadRequest"),
        ("/api/models?limit=abc", 400, "BadRequest"),
        ("/api/models/demo/tiny/tree/main?limit=5000", 400, "BadRequest"),
        ("/api/models/demo/tiny/tree/main?cursor=%%%", 400, "BadRequest"),
        ("/api/models/demo/tiny/tree/main/no-such-dir", 404, "EntryNotFound"),
        ("/api/models/demo/tiny/tree/main?recursive=maybe", 400, "BadRequest"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client, open_model, url, status, code):
    response = client.get(url)
    assert response.status_code == status, response.data
    assert response.headers["X-Error-Code"] == code
    assert len(response.headers["X-Error-Message"]) > 10
    assert response.json["error"] == response.headers["X-Error-Message"]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=abc", 400),
        ("bytes=5-2", 400),
        ("items=0-1", 400),
        ("bytes=0-1,4-5", 416),
        ("bytes=99999999-", 416),
        ("bytes=-0", 416),
    ],
)
def test_malformed_or_unsatisfiable_range(client, open_model, header, status):
    response = client.get(
        f"/{open_model.repo_id}/resolve/main/model_index.json", headers={"Range": header}
    )
    assert response.status_code == status
    assert response.headers["X-Error-Message"]
    if status == 416:
        assert response.headers["Content-Range"].startswith("bytes */")


def test_diffusers_loads_and_generates_through_hf_endpoint(live_server, open_model, tmp_path):
    script = """
import sys
import torch
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1], revision="main")
image = pipe("left pleural effusion", num_inference_steps=2, height=32, width=32,
             generator=torch.Generator().manual_seed(0), output_type="np").images[0]
print("SHAPE", image.shape)
"""
    env = dict(os.environ, HF_ENDPOINT=live_server.url, HF_HUB_CACHE=str(tmp_path / "hf"))
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [sys.executable, "-c", script, open_model.repo_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHAPE (32, 32, 3)" in result.stdout


def test_every_route_declares_an_action(app):
    from registry.access.seam import route_action

    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and route_action(app, rule.endpoint) is None
    ]
    assert undeclared == [], f"routes without @requires(action): {undeclared}"


def test_a_deferred_view_that_forgets_to_authorize_is_refused(app, open_model):
    from registry.access.seam import requires

    @app.get("/_forgetful")
    @requires("model:read", deferred=True)
    def forgetful():
        return json.dumps({"weights": "leaked"})

    response = app.test_client().get("/_forgetful")
    assert response.status_code == 500
    assert b"leaked" not in response.data


def test_model_listing_shows_each_newest_version_without_a_query_per_model(
    app, client, registry, tiny_model_dir
):
    """`/api/models` and the catalog ask for the newest versions of a whole page at once."""
    from sqlalchemy import event

    from tests.fixtures.repos import publish_folder

    def listing() -> tuple[dict[str, str], int]:
        statements = []
        record = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(registry.engine, "before_cursor_execute", record)
        try:
            body = client.get("/api/models?limit=50").get_json()
            assert client.get("/").status_code == 200
        finally:
            event.remove(registry.engine, "before_cursor_execute", record)
        return {m["id"]: m["sha"] for m in body}, len(statements)

    first = publish_folder(registry, "mgh/one", tiny_model_dir, tag="v1")
    newest = publish_folder(registry, "mgh/one", tiny_model_dir, tag="v2")
    assert newest.commit != first.commit
    few, few_queries = listing()
    assert few == {"mgh/one": newest.commit}

    others = {f"bwh/m{i}": publish_folder(registry, f"bwh/m{i}", tiny_model_dir) for i in range(4)}
    many, many_queries = listing()
    assert many == {"mgh/one": newest.commit} | {repo: p.commit for repo, p in others.items()}
    assert many_queries == few_queries  # five models cost what one did
