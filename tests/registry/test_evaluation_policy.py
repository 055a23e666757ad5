"""A policy may require an evaluation report: a version without one is refused at commit
with a message naming the requirement; one with a passing report is accepted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from registry.publishing.evaluation_policy import EvaluationPolicyError, load_rules, problems_for
from tests.conftest import make_settings
from tests.registry.publishing_helpers import UploadApi, folder_files, make_token, make_user

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
RULES = {
    "evaluation": {
        "tiers": {"open": {"privacy": {"max_near_copies": 0, "min_generated": 8}}},
        "datasets": {"mimic-cxr": {"utility": {"min_gain": 0.0}}},
    }
}


def _privacy(count: int, generated: int = 16, smallest: list[float] | None = None) -> dict:
    return {
        "method": "nearest training image",
        "sample_sizes": {"generated": generated, "training": 30, "held_out": 10},
        "spaces": {"pixel": {"smallest": smallest or [0.05] * min(generated, 20)}},
        "near_copies": {"count": count, "examples": []},
        "passed": count == 0,
    }


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(REPO_POLICIES, folder)
    (folder / "evaluation.yaml").write_text(yaml.safe_dump(RULES))
    return folder


@pytest.fixture
def settings(database_url: str, tmp_path: Path, policies: Path):
    return make_settings(
        database_url, tmp_path, public_url="http://127.0.0.1", policies_path=policies
    )


def _with_evaluation(files: dict[str, bytes], evaluation: object) -> dict[str, bytes]:
    text = files["README.md"].decode()
    _, front, body = text.split("---", 2)
    card = yaml.safe_load(front)
    card["evaluation"] = evaluation
    rendered = "---\n" + yaml.safe_dump(card, sort_keys=False) + "---" + body
    return {**files, "README.md": rendered.encode()}


def test_a_policy_requiring_a_privacy_report_refuses_without_and_accepts_with_one(
    registry, client, tiny_model_dir: Path
) -> None:
    api = UploadApi(make_token(registry, make_user(registry, "p@mgh.org", institution="mgh")),
                    client=client)  # fmt: skip
    files = folder_files(tiny_model_dir)  # an open-tier card whose evaluation is prose

    refused = api.publish("mgh/cxr-eval", files, tier="open", tag="v1")
    assert refused.status == 422, refused.body
    message = refused.body["error"]
    assert "policies/evaluation.yaml requires a privacy report for tier 'open'" in message
    assert "registry-train evaluate MODEL --privacy" in message

    flagged = api.publish("mgh/cxr-eval", _with_evaluation(files, {"privacy": _privacy(3)}),
                          tier="open", tag="v1")  # fmt: skip
    assert flagged.status == 422
    assert "found 3 near-copies; at most 0 are allowed" in flagged.body["error"]

    too_few = api.publish("mgh/cxr-eval", _with_evaluation(files, {"privacy": _privacy(0, 4)}),
                          tier="open", tag="v1")  # fmt: skip
    assert too_few.status == 422 and "at least 8 are required" in too_few.body["error"]

    accepted = api.publish("mgh/cxr-eval", _with_evaluation(files, {"privacy": _privacy(0)}),
                           tier="open", tag="v1")  # fmt: skip
    assert accepted.status == 200, accepted.body
    assert accepted.body["state"] == "published"
    card = client.get("/api/models/mgh/cxr-eval").get_json()["cardData"]
    assert card["evaluation"]["privacy"]["near_copies"]["count"] == 0


def test_rules_by_dataset_and_a_policy_distance(policies: Path) -> None:
    card = {"datasets": ["mimic-cxr"], "evaluation": {"privacy": _privacy(0)}}
    problems = problems_for(policies, "credentialed", card)
    assert [p.reason for p in problems] == [
        "policies/evaluation.yaml requires a utility report for dataset 'mimic-cxr': the card "
        "has no evaluation.utility; run `registry-train evaluate MODEL --utility --data "
        "MANIFEST` and export again"
    ]
    gain = {"gain": {"real+synthetic - real": {"value": -0.01, "ci95": [-0.05, 0.03]}}}
    card["evaluation"]["utility"] = gain
    assert "its gain is -0.0100" in problems_for(policies, "credentialed", card)[0].reason

    rules = {"evaluation": {"tiers": {"open": {"privacy": {
        "max_near_copies": 0, "near_copy_distance": 0.04}}}}}  # fmt: skip
    (policies / "evaluation.yaml").write_text(yaml.safe_dump(rules))
    close = {"evaluation": {"privacy": _privacy(0, smallest=[0.03, 0.05, 0.06])}}
    assert (
        "found 1 near-copies at pixel distance 0.04"
        in problems_for(policies, "open", close)[0].reason
    )
    far = {"evaluation": {"privacy": _privacy(0, smallest=[0.05, 0.06])}}
    assert problems_for(policies, "open", far) == []

    (policies / "evaluation.yaml").write_text("evaluation: {tiers: {open: {privacy: {max: 1}}}}")
    with pytest.raises(EvaluationPolicyError, match="unknown \\['max'\\]"):
        load_rules(policies)


def test_the_shipped_policy_loads_beside_the_access_policies() -> None:
    from registry.access.policy import load_policies

    rules = load_rules(REPO_POLICIES)
    assert rules["datasets"]["mimic-cxr"]["privacy"]["max_near_copies"] == 0
    assert "credentialed" in load_policies(REPO_POLICIES).tiers
