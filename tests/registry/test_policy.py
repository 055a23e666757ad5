"""Policy files: the shipped policy loads; malformed files stop start-up with a message
naming the file, the key and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from registry.access.engine import PolicyEngine
from registry.access.policy import PolicyError, load_policies
from registry.config import Settings

SHIPPED = Path(__file__).resolve().parents[2] / "policies"


def test_shipped_policy_declares_the_four_tiers_training_and_dua() -> None:
    engine = PolicyEngine.load(SHIPPED)
    assert engine.tier_names() == {"open", "registered", "credentialed", "contributor-review"}
    assert engine.training("citi-dsor").valid_days == 1095
    dua = engine.dua("physionet-credentialed-1.5.0")
    assert "https://physionet.org/content/mimic-cxr/view-dua/2.1.0/" in dua.text
    assert dua.url == "https://physionet.org/content/mimic-cxr/view-dua/2.1.0/"
    assert engine.tier("contributor-review").requires == (
        "authenticated",
        "email-verified",
        "terms-accepted",
        "credentialed",
        "training:citi-dsor",
        "dua-signed",
        "access-request-accepted",
    )
    assert engine.default_dua("open") is None
    assert engine.default_dua("contributor-review") == "physionet-credentialed-1.5.0"
    assert engine.review_required("open") is False
    assert all(
        engine.review_required(t) for t in ("registered", "credentialed", "contributor-review")
    )
    assert engine.review_required("no-such-tier") is True


def _policy(tmp_path: Path, yaml_text: str) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(SHIPPED / "duas", folder / "duas")
    (folder / "access.yaml").write_text(yaml_text)
    return folder


BASE = """
trainings:
  citi-dsor: {title: CITI, valid_days: 1095}
duas:
  physionet-credentialed-1.5.0: {title: DUA, text: duas/physionet-credentialed-1.5.0.md}
"""


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        (
            BASE + "tiers:\n  c: {require: [training:citi-x]}\n",
            "tiers.c.require[0]",
            "unknown training 'citi-x'",
        ),
        (
            BASE + "tiers:\n  c: {require: [credentialled]}\n",
            "tiers.c.require[0]",
            "unknown requirement",
        ),
        (BASE + "tiers:\n  a: {extends: b}\n  b: {extends: a}\n", "extends", "cycle"),
        (BASE + "tiers:\n  a: {extends: nope}\n", "tiers.a.extends", "unknown tier 'nope'"),
        (BASE + "tiers:\n  a: {require: [dua-signed]}\n", "tiers.a.require", "needs a 'dua'"),
        (BASE + "tiers:\n  a: {dua: other-1.0}\n", "tiers.a.dua", "unknown DUA 'other-1.0'"),
        (BASE + "tiers:\n  a: {requires: [authenticated]}\n", "tiers.a.requires", "unknown key"),
        (BASE + "tiers:\n  a: {review: maybe}\n", "tiers.a.review", "true or false"),
        (
            "trainings:\n  citi-dsor: {title: CITI, valid_days: -3}\ntiers: {open: {}}\n",
            "trainings.citi-dsor.valid_days",
            "positive number of days",
        ),
        (
            "duas:\n  x-1: {title: X, text: duas/missing.md}\ntiers: {open: {}}\n",
            "duas.x-1.text",
            "cannot read 'duas/missing.md'",
        ),
        (
            "duas:\n  x-1: {title: X, text: ../../etc/passwd}\ntiers: {open: {}}\n",
            "duas.x-1.text",
            "must be a file inside",
        ),
        ("tiers: {open: {}}\ngroups: {}\n", "groups", "unknown section"),
        ("tiers:\n  open: {}\n bad-indent: {}\n", "line", "invalid YAML"),
        (BASE, "tiers", "no access tiers declared"),
        (
            "tiers: {open: {}}\ndatasets:\n  mimic-cxr: {tier: secret}\n",
            "datasets.mimic-cxr.tier",
            "must be 'any' or a declared tier",
        ),
        (
            "tiers: {open: {}}\ndatasets:\n  mimic-cxr: {tier: open, dua: nope}\n",
            "datasets.mimic-cxr.dua",
            "unknown DUA 'nope'",
        ),
        ("tiers:\n  open: {review_exempt: demo}\n", "tiers.open.review_exempt", "list"),
    ],
)
def test_malformed_policy_names_file_key_and_problem(
    tmp_path: Path, body: str, key: str, problem: str
) -> None:
    folder = _policy(tmp_path, body)
    with pytest.raises(PolicyError) as caught:
        load_policies(folder)
    message = str(caught.value)
    assert "access.yaml" in message
    assert key in message
    assert problem in message


def test_duplicate_ids_across_files_are_refused(tmp_path: Path) -> None:
    folder = _policy(tmp_path, BASE + "tiers: {open: {}}\n")
    (folder / "more.yaml").write_text("trainings:\n  citi-dsor: {title: Again, valid_days: 1}\n")
    with pytest.raises(
        PolicyError, match=r"more.yaml: trainings.citi-dsor: already declared in access.yaml"
    ):
        load_policies(folder)


def test_malformed_policy_stops_app_and_serve(tmp_path: Path, monkeypatch) -> None:
    from registry.app import create_app

    folder = _policy(tmp_path, BASE + "tiers:\n  c: {require: [training:nope]}\n")
    settings = Settings.from_env(
        {}, instance_path=tmp_path / "inst", policies_path=folder, secret_key="x" * 32
    )
    with pytest.raises(PolicyError, match=r"access.yaml: tiers.c.require\[0\]: unknown training"):
        create_app(settings=settings)

    from registry.cli import main

    monkeypatch.setenv("REGISTRY_POLICIES_PATH", str(folder))
    monkeypatch.setenv("REGISTRY_INSTANCE_PATH", str(tmp_path / "inst"))
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert "access.yaml: tiers.c.require[0]: unknown training 'nope'" in result.output


def test_shipped_datasets_set_tier_floors() -> None:
    datasets = load_policies(SHIPPED).datasets
    assert datasets["mimic-cxr"].tier == "credentialed"
    assert datasets["mimic-cxr"].dua == "physionet-credentialed-1.5.0"
    assert datasets["synthetic-phantoms"].tier is None  # any tier


def test_every_tier_is_reviewed_unless_its_policy_says_otherwise_per_institution(
    tmp_path: Path,
) -> None:
    folder = _policy(tmp_path, "tiers:\n  open: {}\n  lab: {review_exempt: [demo]}\n")
    engine = PolicyEngine.load(folder)
    assert engine.review_required("open") is True  # open included
    assert engine.review_required("lab", "mgh") is True
    assert engine.review_required("lab", "demo") is False
