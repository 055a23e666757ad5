"""What a browser gets for an address that leads nowhere, and for a hub-style model URL."""

from __future__ import annotations

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_gets_an_html_404_with_a_search_box(client):
    response = client.get("/nothing/here/at/all", headers=BROWSER)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "No such page: /nothing/here/at/all" in page
    assert 'role="search"' in page and 'name="search"' in page


def test_api_clients_still_get_json_for_an_unknown_route(client):
    for accept in ("*/*", "application/json"):
        response = client.get("/nothing/here/at/all", headers={"Accept": accept})
        assert response.status_code == 404
        assert response.json["code"] == "NotFound"
        assert "No such route" in response.json["error"]


def test_hub_style_url_leads_to_the_model_page(client, open_model):
    response = client.get("/demo/tiny", headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/models/demo/tiny")
    assert "Tiny phantom (demo)" in client.get("/demo/tiny", follow_redirects=True).text


def test_hub_style_url_of_a_missing_or_gated_model_says_so_in_html(client, gated_model):
    missing = client.get("/demo/no-such-model", headers=BROWSER)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "Repository demo/no-such-model not found" in missing.text
    assert 'role="search"' in missing.text
    # A gated model's page is readable by anyone (the access box says what is missing).
    gated = client.get("/demo/gated", headers=BROWSER)
    assert gated.status_code == 302
