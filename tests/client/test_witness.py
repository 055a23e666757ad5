"""Every pull keeps the registry's newest audit checkpoint once the registry proves it
extends the one held; a rewritten log is reported and its evidence kept, and the export is
what ``registry-server audit verify --witness`` checks the database against."""

from __future__ import annotations

import json

import requests

import client.merkle as merkle
from registry.audit.sealer import held_checkpoints, witness_path
from tests.client.conftest import run_cli
from tests.registry.audit_helpers import rewrite_log, seal, sealed_events
from tests.registry.audit_helpers import run_cli as server_cli


def _download(url: str) -> None:
    assert requests.get(f"{url}/demo/tiny/resolve/main/model_index.json", timeout=30).ok


def _held_sizes(client) -> list[int]:
    return [merkle.parse_checkpoint(c)["size"] for c in client.witness.load()["checkpoints"]]


def test_pulls_keep_checkpoints_that_extend_each_other(
    make_client, open_tiny, registry, settings, tmp_path
) -> None:
    client = make_client()
    client.pull("demo/tiny", quiet=True)
    assert _held_sizes(client) == []  # nothing sealed yet: nothing to keep
    seal(registry)
    client.pull("demo/tiny", quiet=True)
    first = _held_sizes(client)
    assert len(first) == 1

    _download(client.url)
    seal(registry)
    observed = client.witness_log()
    assert observed is not None and observed.extended_from == first[0]
    assert _held_sizes(client)[-1] > first[0]
    assert not [n for n in client.notices if "WARNING" in n]

    exported = tmp_path / "witness.json"
    shown = run_cli("--url", client.url, "audit-witness", "--export", str(exported))
    assert shown.returncode == 0, shown.stderr
    assert f"{len(_held_sizes(client))} checkpoint(s) held" in shown.stdout
    checked = server_cli(settings, "audit", "verify", "--witness", str(exported))
    assert checked.exit_code == 0, checked.output
    witnessed = len(_held_sizes(client)) + len(held_checkpoints(settings))  # + the sealer's
    assert f"{witnessed} witnessed checkpoint(s) match" in checked.output


def test_a_rewritten_log_is_reported_and_the_evidence_kept(
    make_client, open_tiny, registry, settings, tmp_path
) -> None:
    client = make_client()
    client.pull("demo/tiny", quiet=True)
    seal(registry)
    client.pull("demo/tiny", quiet=True)
    held = client.witness.latest()
    assert held is not None

    # An operator with the signing key deletes a download and re-signs the rest; they also
    # replace the sealer's own checkpoint file, so the database alone looks intact.
    download = next(e for e in sealed_events(registry) if e.tag == "version:download")
    rewrite_log(registry, drop=[download.id], resign=True)
    witness_path(settings).unlink()
    _download(client.url)  # new events, sealed over the rewritten history
    seal(registry)
    assert server_cli(settings, "audit", "verify").exit_code == 0

    client.pull("demo/tiny", quiet=True)
    warning = [n for n in client.notices if n.startswith("WARNING")]
    assert warning and "no longer extends the checkpoint this machine holds" in warning[0]
    document = client.witness.load()
    assert document["checkpoints"][-1]["body"] == held["body"]  # the evidence is not replaced
    assert document["conflicts"] and document["conflicts"][0]["held"]["body"] == held["body"]

    exported = tmp_path / "evidence.json"
    shown = run_cli("--url", client.url, "audit-witness", "--export", str(exported))
    assert shown.returncode == 7, shown.stdout + shown.stderr
    assert "do not extend the ones held here" in shown.stderr
    caught = server_cli(settings, "audit", "verify", "--witness", str(exported))
    assert caught.exit_code == 1
    size = json.loads(held["body"])["size"]
    assert (
        f"checkpoint {size}" in caught.output and "held by witness evidence.json" in caught.output
    )
