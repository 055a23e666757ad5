"""The rest of the hub's read protocol, driven by the stock huggingface_hub client:
listing filters and sorting, refs, commits, paths-info, slash revisions, repo-id case."""

from __future__ import annotations

import datetime as dt

import pytest
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError

from tests.fixtures.repos import publish_folder


@pytest.fixture
def catalogue(registry, tiny_model_dir):
    """Nine models over three tiers, published one day apart (the last is the newest)."""
    start = registry.now()
    tiers = ["open", "credentialed", "contributor-review"]
    published = []
    for i in range(9):
        when = start + dt.timedelta(days=i)
        registry.clock = lambda when=when: when
        published.append(
            publish_folder(registry, f"site{i}/m{i}", tiny_model_dir, tier=tiers[i % 3])
        )
    registry.clock = lambda: start + dt.timedelta(days=10)
    return published


def test_list_models_filters_sorts_and_expands_like_the_hub(live_server, catalogue):
    api = HfApi(endpoint=live_server.url)
    assert len(list(api.list_models())) == 9

    credentialed = {m.id for m in api.list_models(filter="tier:credentialed")}
    assert credentialed == {"site1/m1", "site4/m4", "site7/m7"}
    assert {m.id for m in api.list_models(filter=["tier:open", "license:other"])} <= {
        "site0/m0",
        "site3/m3",
        "site6/m6",
    }
    assert len(list(api.list_models(filter="dataset:no-such-dataset"))) == 0

    newest_first = [m.id for m in api.list_models(sort="last_modified")]
    assert newest_first[0] == "site8/m8" and newest_first[-1] == "site0/m0"
    assert [m.id for m in api.list_models(sort="created_at")][0] == "site8/m8"

    gated = {m.id for m in api.list_models(gated=True)}
    assert len(gated) == 6 and "site0/m0" not in gated
    assert {m.id for m in api.list_models(gated=False)} == {"site0/m0", "site3/m3", "site6/m6"}

    assert len(list(api.list_models(pipeline_tag="text-to-image"))) == 9
    assert list(api.list_models(pipeline_tag="image-classification")) == []

    full = next(iter(api.list_models(author="site2", full=True)))
    assert "model_index.json" in {s.rfilename for s in full.siblings}
    carded = next(iter(api.list_models(author="site2", cardData=True)))
    assert carded.card_data["license"] and "access_tier" in carded.card_data
    assert next(iter(api.list_models(author="site2"))).card_data is None

    assert len(list(api.list_models(limit=4))) == 4


def test_list_models_pages_with_link_and_honours_direction(client, catalogue):
    url = "/api/models?sort=createdAt&direction=1&limit=4&filter=diffusers&unknown=ignored"
    seen: list[str] = []
    for _ in range(5):
        response = client.get(url)
        assert response.status_code == 200, response.json
        seen += [m["id"] for m in response.json]
        link = response.headers.get("Link")
        if not link:
            break
        assert "filter=diffusers" in link and "direction=1" in link
        url = link.split(";")[0].strip("<>").replace("http://localhost", "")
    assert seen == [f"site{i}/m{i}" for i in range(9)]


@pytest.mark.parametrize(
    "query",
    ["sort=popularity", "direction=2", "gated=perhaps", "full=maybe", "limit=0"],
)
def test_list_models_refuses_bad_values(client, catalogue, query):
    response = client.get(f"/api/models?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json["error"]


def test_refs_commits_and_paths_info(live_server, registry, tiny_model_dir):
    first = publish_folder(registry, "demo/tiny", tiny_model_dir, tag="v1")
    api = HfApi(endpoint=live_server.url)
    refs = api.list_repo_refs("demo/tiny")
    assert [(b.name, b.ref, b.target_commit) for b in refs.branches] == [
        ("main", "refs/heads/main", first.commit)
    ]
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [
        ("v1", "refs/tags/v1", first.commit)
    ]
    commits = api.list_repo_commits("demo/tiny")
    assert [c.commit_id for c in commits] == [first.commit]
    assert commits[0].authors and commits[0].created_at.year >= 2000 and "v1" in commits[0].title

    infos = api.get_paths_info("demo/tiny", ["model_index.json", "unet", "nope.txt"])
    kinds = {i.path: type(i).__name__ for i in infos}
    assert kinds == {"model_index.json": "RepoFile", "unet": "RepoFolder"}

    fs = HfFileSystem(endpoint=live_server.url)
    assert fs.exists("demo/tiny/model_index.json")
    assert not fs.exists("demo/tiny/missing.json")
    assert fs.info("demo/tiny/unet")["type"] == "directory"
    assert "demo/tiny/unet/config.json" in fs.glob("demo/tiny/unet/*.json")


def test_commits_list_every_published_version_newest_first(client, registry, model_copy):
    old = publish_folder(registry, "demo/tiny", model_copy, tag="v1")
    (model_copy / "scheduler" / "scheduler_config.json").write_text(
        (model_copy / "scheduler" / "scheduler_config.json").read_text().replace("}", " }")
    )
    new = publish_folder(registry, "demo/tiny", model_copy, tag="v2")
    assert new.commit != old.commit
    newest = client.get("/api/models/demo/tiny/commits/main").json
    assert [c["id"] for c in newest] == [new.commit, old.commit]
    assert {"id", "title", "authors", "date", "message"} <= set(newest[0])
    at_v1 = client.get("/api/models/demo/tiny/commits/v1").json
    assert [c["id"] for c in at_v1] == [old.commit]
    paged = client.get("/api/models/demo/tiny/commits/main?limit=1")
    assert len(paged.json) == 1 and 'rel="next"' in paged.headers["Link"]


def test_slash_revisions_resolve_as_git_refs(live_server, open_model, tmp_path):
    api = HfApi(endpoint=live_server.url)
    assert api.revision_exists(open_model.repo_id, "refs/pr/1") is False
    assert api.revision_exists(open_model.repo_id, "refs/heads/other") is False
    assert api.revision_exists(open_model.repo_id, "refs/tags/v1") is True
    assert api.revision_exists(open_model.repo_id, "refs/heads/main") is True
    assert api.model_info(open_model.repo_id, revision="refs/tags/v1").sha == open_model.commit
    local = hf_hub_download(
        open_model.repo_id,
        "model_index.json",
        revision="refs/tags/v1",
        endpoint=live_server.url,
        cache_dir=tmp_path / "hf",
    )
    assert local.endswith("model_index.json")


def test_repo_ids_in_another_case_redirect_to_the_real_one(
    live_server, client, open_model, tmp_path
):
    api = HfApi(endpoint=live_server.url)
    assert api.model_info("Demo/TINY").id == "demo/tiny"
    local = hf_hub_download(
        "Demo/Tiny", "unet/config.json", endpoint=live_server.url, cache_dir=tmp_path / "hf"
    )
    assert local.endswith("config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("Demo/Tiny-Phantom")
    bad = client.get("/api/models/Demo%20X/tiny")
    assert bad.status_code == 400
    assert bad.json["error"].startswith("Invalid repo id 'Demo X/tiny': use NAMESPACE/NAME")
    moved = client.get("/Demo/Tiny/resolve/v1/unet/config.json?x=1")
    assert moved.status_code == 307
    assert moved.headers["Location"] == "/demo/tiny/resolve/v1/unet/config.json?x=1"
