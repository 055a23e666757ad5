"""Browsing without a browser: the home page, filters and the model page, as HTML."""

from __future__ import annotations

from tests.fixtures.repos import publish_folder


def test_home_lists_published_models_and_filters_by_tier(client, open_model, gated_model):
    page = client.get("/").get_data(as_text=True)
    assert "demo/tiny" in page and "demo/gated" in page
    assert "2 models" in page

    page = client.get("/?tier=credentialed").get_data(as_text=True)
    assert "demo/gated" in page and 'href="/models/demo/tiny"' not in page
    assert "clear filters" in page


def test_home_filters_by_search_tag_and_base_model(client, open_model, gated_model):
    page = client.get("/?search=gated").get_data(as_text=True)
    assert "1 model " in page and "demo/gated" in page

    # The tiny model's card has tags [demo, chest-x-ray, synthetic] and a base_model.
    page = client.get("/?tag=synthetic").get_data(as_text=True)
    assert "2 models" in page
    page = client.get("/?tag=no-such-tag").get_data(as_text=True)
    assert "No models match" in page
    page = client.get("/?base_model=nothing").get_data(as_text=True)
    assert "No models match" in page


def test_model_page_shows_card_table_files_versions_and_open_access(client, open_model):
    response = client.get("/models/demo/tiny")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # Front matter as a table, not as Markdown text.
    assert '<th scope="row">Intended use</th>' in page
    assert "---" not in page.split('class="card-body"')[1].split("</section>")[0]
    assert "<h3>Tiny phantom (demo)</h3>" in page  # the card sits under "Model card" (h2)
    assert "unet/diffusion_pytorch_model.safetensors" in page
    assert open_model.commit[:10] in page
    assert 'data-access="allowed"' in page
    assert f"/demo/tiny/resolve/{open_model.commit}/model_index.json" in page


def test_gated_model_page_explains_what_is_missing(client, gated_model):
    page = client.get("/models/demo/gated").get_data(as_text=True)
    assert 'data-access="denied"' in page
    assert "You cannot download this model yet" in page
    # No download links for someone who may not download.
    assert "/resolve/" not in page


def test_revision_page_and_unknown_model(client, registry, open_model, model_copy):
    second = publish_folder(registry, "demo/tiny", model_copy, tag="v2")
    page = client.get("/models/demo/tiny").get_data(as_text=True)
    assert second.commit[:10] in page and open_model.commit[:10] in page

    page = client.get(f"/models/demo/tiny/revision/{open_model.commit}").get_data(as_text=True)
    assert f"--revision {open_model.commit}" in page

    response = client.get("/models/demo/absent")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not found" in response.get_data(as_text=True)
