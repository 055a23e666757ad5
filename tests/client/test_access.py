"""Gated models: ``pull`` relays what is missing; after approval the same pull succeeds."""

from __future__ import annotations

import pytest
import requests

from client.errors import AccessDenied
from tests.client.conftest import run_cli
from tests.fixtures.repos import publish_folder

REPO = "mgh/cxr-review"


@pytest.fixture
def review_model(registry, tiny_model_dir):
    from registry.repos import services as repos

    published = publish_folder(registry, REPO, tiny_model_dir, tier="contributor-review")
    with registry.sessions() as db, db.begin():
        model = repos.find_model(db, "mgh", "cxr-review")
        model.access_fields = [{"name": "purpose", "label": "Intended use", "type": "text"}]
    return published


def test_missing_requirements_are_listed_with_fix_urls(
    people, make_client, counted_server, client_dirs, review_model
):
    student = people.token(people.user("student@uni.edu"), "read")
    client = make_client(student)

    with pytest.raises(AccessDenied) as denied:
        client.pull(REPO, quiet=True)
    requirements = {m.requirement for m in denied.value.missing}
    assert {"credentialed", "access-request-accepted"} <= requirements
    assert any(r.startswith("training:") for r in requirements)
    assert all(m.fix_url.startswith(counted_server.url) for m in denied.value.missing if m.fix_url)
    assert not client.cache.version_dir(REPO, review_model.commit).exists()
    assert not (client.cache.root / "blobs").exists()

    done = run_cli("--url", counted_server.url, "--token", student, "pull", REPO, "-q")
    assert done.returncode == 4
    assert "What is missing" in done.stderr
    assert f"{counted_server.url}/" in done.stderr  # where to fix it, as a full URL

    anonymous = run_cli("--url", counted_server.url, "pull", REPO, "-q")
    assert anonymous.returncode == 4 and "What is missing" in anonymous.stderr


def test_request_access_then_pull_after_approval(
    registry, people, make_client, counted_server, client_dirs, review_model
):
    researcher = people.token(people.researcher("res@uni.edu"), "write")
    reviewer = people.token(
        people.user("admin@mgh.org", institution="mgh", role="institution-admin"), "admin"
    )
    client = make_client(researcher)
    with pytest.raises(AccessDenied) as denied:
        client.pull(REPO, quiet=True)
    assert [m.requirement for m in denied.value.missing] == ["access-request-accepted"]

    asked = run_cli(
        "--url", counted_server.url, "--token", researcher,
        "request-access", REPO, "--field", "purpose=Synthetic effusion data for a classifier",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert "pending" in asked.stdout
    (mine,) = client.my_access_requests(REPO)
    assert mine["status"] == "pending" and mine["fields"]["purpose"].startswith("Synthetic")

    decided = requests.post(
        f"{counted_server.url}/api/v1/access-requests/{mine['id']}/decision",
        json={"decision": "accept"},
        headers={"Authorization": f"Bearer {reviewer}"},
        timeout=30,
    )
    assert decided.status_code == 200, decided.text

    result = client.pull(REPO, quiet=True)
    assert result.commit == review_model.commit
    assert client.info(REPO)["access"]["allowed"] is True


def test_request_access_to_an_open_model_says_so_once(people, counted_server, open_model):
    researcher = people.token(people.researcher("res@uni.edu"), "write")
    asked = run_cli(
        "--url", counted_server.url, "--token", researcher, "request-access", open_model.repo_id
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    said = asked.stdout + asked.stderr
    assert said.count("needs no access request") == 1, said
    assert "download" in said.lower()  # and what to do instead
