"""The model page shows the card's evaluation as a table and two server-rendered SVG plots."""

from __future__ import annotations

from pathlib import Path

import yaml

from registry.web.evaluation_view import evaluation_view
from tests.fixtures.repos import publish_folder

EVALUATION = {
    "utility": {
        "method": "logistic regression <script>alert(1)</script>",
        "arms": {
            "real": {"value": 0.80, "ci95": [0.76, 0.83]},
            "real+synthetic": {"value": 0.87, "ci95": [0.85, 0.89]},
            "synthetic": {"value": 0.87, "ci95": [0.85, 0.89]},
        },
        "gain": {"real+synthetic - real": {"value": 0.069, "ci95": [0.039, 0.103]}},
        "sample_sizes": {"real_train_images": 12, "synthetic_images": 120, "test_images": 80},
    },
    "privacy": {
        "sample_sizes": {"generated": 8, "training": 37, "held_out": 3},
        "spaces": {
            "pixel": {
                "generated": {"min": 0.27, "median": 0.28},
                "baseline": {"min": 0.06, "median": 0.08},
                "threshold": 0.03,
                "histogram": {
                    "edges": [0.0, 0.1, 0.2, 0.3],
                    "generated": [0, 0, 8],
                    "baseline": [3, 0, 0],
                },  # fmt: skip
            }
        },
        "near_copies": {"count": 0, "examples": []},
        "passed": True,
    },
}


def test_model_page_shows_the_evaluation_table_and_plots(client, registry, model_copy: Path):
    text = (model_copy / "README.md").read_text()
    _, front, body = text.split("---", 2)
    card = yaml.safe_load(front)
    card["evaluation"] = EVALUATION
    (model_copy / "README.md").write_text("---\n" + yaml.safe_dump(card) + "---" + body)
    publish_folder(registry, "demo/evaluated", model_copy)

    page = client.get("/models/demo/evaluated").get_data(as_text=True)
    section = page.split('id="evaluation-heading"')[1].split("</section>")[0]
    assert "Utility: gain from synthetic" in section and "+0.069 [+0.039, +0.103]" in section
    assert "0.870 [0.850, 0.890]" in section
    assert "Privacy: near-copies" in section and "0 of 8 generated (passed)" in section
    assert section.count("<svg") == 2 and 'aria-label="Macro AUROC per arm' in section
    assert "<script>" not in page.split("<main")[1]


def test_no_evaluation_section_for_prose_or_junk() -> None:
    assert evaluation_view({"evaluation": "Not evaluated yet."}) is None
    junk = {"evaluation": {"utility": {"arms": {"real": {"value": "1e9<svg>"}}}, "privacy": 3}}
    view = evaluation_view(junk)
    assert view is not None and view.auroc_svg is None
    assert [value for _, value, _ in view.rows] == ["n/a"]
