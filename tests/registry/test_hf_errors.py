"""What stock hub clients show when the registry refuses: token failures over HTTPS."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import _http as hub_http

from tests.fixtures.tls import TlsServer


@pytest.fixture
def https_server(app, tmp_path) -> Iterator[str]:
    """The app over TLS on loopback; the hub client trusts its certificate for the test."""
    server = TlsServer(app, tmp_path)
    hub_http.set_client_factory(
        lambda: httpx2.Client(verify=str(server.cert), follow_redirects=True, timeout=30)
    )
    try:
        yield server.url
    finally:
        hub_http.set_client_factory(hub_http.default_client_factory)
        server.stop()


def test_a_revoked_token_is_a_credentials_error_with_its_reason(
    https_server, api, people, open_model, tmp_path, caplog
):
    uid = people.user("ada@example.org")
    token = people.token(uid, "admin")
    listed = api("GET", "/api/v1/tokens", token=token).json
    assert api("DELETE", f"/api/v1/tokens/{listed[0]['id']}", token=token).status_code == 200

    hub = HfApi(endpoint=https_server, token=token)
    with pytest.raises(HfHubHTTPError) as info:
        hub.model_info(open_model.repo_id)
    assert not isinstance(info.value, RepositoryNotFoundError)
    assert info.value.response.status_code == 401
    assert "was revoked on" in str(info.value) and "/account/tokens" in str(info.value)

    caplog.set_level(logging.WARNING, logger="huggingface_hub")
    with pytest.raises(HfHubHTTPError) as download:
        hf_hub_download(
            open_model.repo_id,
            "model_index.json",
            endpoint=https_server,
            token=token,
            cache_dir=tmp_path / "hf",
        )
    assert not isinstance(download.value, RepositoryNotFoundError)
    assert "Invalid credentials in Authorization header" in str(download.value)
    # A HEAD answer has no body; the reason reaches the user as the hub's warning line.
    hub_http._WARNED_TOPICS.clear()
    with pytest.raises(HfHubHTTPError):
        hf_hub_download(
            open_model.repo_id,
            "unet/config.json",
            endpoint=https_server,
            token=token,
            cache_dir=tmp_path / "hf",
        )
    assert any("was revoked on" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["unknown", "expired", "foreign"])
def test_every_token_failure_answers_the_hub_header_and_the_reason(
    client, registry, people, open_model, kind
):
    token = people.token(people.user("bob@example.org"), "read", days=1)
    if kind == "unknown":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    elif kind == "expired":
        later = registry.now() + dt.timedelta(days=2)
        registry.clock = lambda: later
    else:
        token = "hf_abcdefghijklmnopqrstuvwxyz"
    reason = {"unknown": "not known", "expired": "expired on", "foreign": "start with"}[kind]
    for method, url in [
        ("GET", f"/api/models/{open_model.repo_id}"),
        ("HEAD", f"/{open_model.repo_id}/resolve/main/model_index.json"),
        ("GET", "/api/models"),
    ]:
        answer = client.open(url, method=method, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, url
        assert answer.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
        assert reason in answer.headers["X-HF-Warning"], url
        if method == "GET":
            assert reason in answer.json["error"]
