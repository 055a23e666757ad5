"""``search`` and ``info``: what a user sees before pulling."""

from __future__ import annotations

import json

from tests.client.conftest import run_cli
from tests.fixtures.repos import publish_folder


def test_search_and_info_show_card_versions_and_access(
    registry, counted_server, client_dirs, open_tiny, tiny_model_dir, make_client
):
    publish_folder(registry, "mgh/gated", tiny_model_dir, tier="credentialed")
    make_client().pull("demo/tiny", quiet=True)

    found = run_cli("--url", counted_server.url, "search", "tiny")
    assert found.returncode == 0 and "demo/tiny" in found.stdout and "mgh/gated" not in found.stdout

    info = run_cli("--url", counted_server.url, "info", "demo/tiny")
    assert info.returncode == 0, info.stderr
    assert open_tiny.commit in info.stdout and "tier: open" in info.stdout
    assert "license: apache-2.0" in info.stdout
    assert "(cached)" in info.stdout and "access: granted" in info.stdout

    gated = run_cli("--url", counted_server.url, "info", "mgh/gated", "--json")
    assert gated.returncode == 0, gated.stderr
    details = json.loads(gated.stdout)
    assert details["tier"] == "credentialed" and details["access"]["allowed"] is False
    # Without access, the version history is still listed (metadata is public).
    assert [(v["commit"], v["state"]) for v in details["versions"]] == [
        (details["commit"], "published")
    ]
    assert "log in" in details["access"]["detail"].lower() or details["access"]["detail"]
