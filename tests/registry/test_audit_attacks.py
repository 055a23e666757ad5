"""The attacks from issue 14, by someone with write access to the database: rewriting
history (delete a download, renumber and re-hash every later event) and truncating the end.

Without the signing key both are caught by ``registry-server audit verify`` against the
signed checkpoints (and the sealer's own checkpoint file outside the database); with the key
(an operator re-signing), by any witness holding a later checkpoint."""

from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from registry.audit.sealer import witness_path
from registry.models import AuditCheckpoint, SigningKey
from registry.publishing.signing import b64, public_raw
from registry.unit_of_work import unit_of_work
from tests.registry.audit_helpers import (
    rewrite_log,
    run_cli,
    seal,
    sealed_events,
    truncate_log,
    write_witness,
)

FILE = "model_index.json"


def _downloads(api, people, gated_model, registry, count: int = 4) -> list:
    """``count`` downloads, each sealed into its own checkpoint as the sealer would."""
    token = people.token(people.researcher("res@example.org"), "read")
    for _ in range(count):
        url = f"/{gated_model.repo_id}/resolve/main/{FILE}"
        assert api("GET", url, token=token).status_code == 200
        seal(registry)
    return [e for e in sealed_events(registry) if e.tag == "version:download"]


def test_a_rewrite_without_the_key_is_caught_and_the_sealer_refuses_to_go_on(
    api, people, gated_model, registry, settings
) -> None:
    downloads = _downloads(api, people, gated_model, registry)
    assert run_cli(settings, "audit", "verify").exit_code == 0
    victim = downloads[1]
    witness_path(settings).unlink()  # the attacker removes what they can reach, too
    rewrite_log(registry, drop=[victim.id], resign=False)

    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    total = len(sealed_events(registry))
    assert "the signature does not verify" in result.output
    assert (
        f"first event that no longer matches: event #{victim.seq}: events #{victim.seq}-#{total} "
        "are covered only by checkpoints whose signatures do not verify"
    ) in result.output
    # The sealer will not sign on top of it either.
    api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}")
    refused = run_cli(settings, "audit", "seal")
    assert refused.exit_code == 1 and "not one this registry signed" in refused.output


def test_a_key_written_into_the_database_signs_nothing_verify_trusts(
    api, people, gated_model, registry, settings
) -> None:
    downloads = _downloads(api, people, gated_model, registry)
    forged = Ed25519PrivateKey.generate()
    with unit_of_work(registry.sessions) as db:
        kid = hashlib.sha256(public_raw(forged)).hexdigest()
        db.add(
            SigningKey(key_id=kid, public_key=b64(public_raw(forged)), created_at=registry.now())
        )
    witness_path(settings).unlink()
    rewrite_log(registry, drop=[downloads[0].id], resign=False, key=forged)

    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1
    assert f"signed by key {kid[:16]}, whose private part this registry does not hold" in (
        result.output
    )


def test_a_rewrite_resigned_with_the_key_is_caught_by_witnesses(
    api, people, gated_model, registry, settings, tmp_path
) -> None:
    downloads = _downloads(api, people, gated_model, registry)
    client_witness = write_witness(tmp_path / "hospital-witness.json", api)
    victim = downloads[1]
    rewrite_log(registry, drop=[victim.id], resign=True)

    # The sealer's own checkpoint file, outside the database, still holds the old head.
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1
    assert "the sealer's witness file" in result.output and "were removed" in result.output

    # An operator with the key can replace that file too; then the database alone looks
    # intact, and only a witness elsewhere (a hospital's client) still knows better.
    witness_path(settings).unlink()
    assert run_cli(settings, "audit", "verify").exit_code == 0
    api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}")
    seal(registry)  # back to the old length, with a different history
    with unit_of_work(registry.sessions) as db:
        size = db.scalar(select(AuditCheckpoint.size).order_by(AuditCheckpoint.size.desc()))
    held = json.loads(client_witness.read_text())["checkpoints"][0]
    assert json.loads(held["body"])["size"] == size

    caught = run_cli(settings, "audit", "verify", "--witness", str(client_witness))
    assert caught.exit_code == 1
    assert f"the log no longer matches checkpoint {size}" in caught.output
    assert "held by witness hospital-witness.json" in caught.output
    assert "rewritten and re-signed" in caught.output


def test_truncation_is_caught_with_and_without_the_sealer_file(
    api, people, gated_model, registry, settings, tmp_path
) -> None:
    _downloads(api, people, gated_model, registry)
    client_witness = write_witness(tmp_path / "witness.json", api)
    events = sealed_events(registry)
    with unit_of_work(registry.sessions) as db:
        sizes = list(db.scalars(select(AuditCheckpoint.size).order_by(AuditCheckpoint.size)))
    keep = sizes[-3]
    truncate_log(registry, keep=keep)  # every remaining checkpoint still verifies

    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1
    assert (
        f"event #{keep + 1}: missing: the sealer's witness file {witness_path(settings)} holds "
        f"checkpoint {len(events)}"
    ) in result.output
    api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}")  # something to seal
    refused = run_cli(settings, "audit", "seal")
    assert refused.exit_code == 1 and "events were removed" in refused.output

    witness_path(settings).unlink()
    caught = run_cli(settings, "audit", "verify", "--witness", str(client_witness))
    assert caught.exit_code == 1
    assert (
        f"event #{keep + 1}: missing: witness witness.json holds checkpoint {len(events)}"
        in caught.output
    )
