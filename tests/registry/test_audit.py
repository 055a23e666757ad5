"""The audit log: once sealed it verifies against its signed checkpoints, and any edited or
deleted event is named by ``registry-server audit verify``; pending events are listed too;
admins query and export events; publishers list who downloaded a version (JSON and CSV)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

import client.merkle as merkle
from registry.audit.services import event_leaf
from registry.models import AuditCheckpoint, AuditEvent
from registry.unit_of_work import unit_of_work
from tests.registry.audit_helpers import seal, sealed_events

FILE = "model_index.json"


@pytest.fixture
def cli(settings, monkeypatch):
    """Run ``registry-server`` against the test's database."""
    from registry.cli import main

    monkeypatch.setenv("REGISTRY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REGISTRY_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("REGISTRY_SECRET_KEY", settings.secret_key)

    def run(*args: str):
        return CliRunner().invoke(main, list(args))

    return run


@pytest.fixture
def history(api, people, open_model, gated_model):
    """A few events of each kind: accounts, tokens, downloads by two users."""
    res = people.token(people.researcher("res@example.org"), "read")
    other = people.token(people.researcher("other@example.org"), "read")
    for token in (res, res, other):
        assert (
            api("GET", f"/{gated_model.repo_id}/resolve/main/{FILE}", token=token).status_code
            == 200
        )
    assert api("GET", f"/{open_model.repo_id}/resolve/main/{FILE}").status_code == 200
    return {"res": res, "other": other}


def _events(registry) -> list[AuditEvent]:
    seal(registry)
    return sealed_events(registry)


def _count(registry) -> int:
    with unit_of_work(registry.sessions) as db:
        return db.scalar(select(func.count()).select_from(AuditEvent))


def _checkpoint_size(registry) -> int:
    with unit_of_work(registry.sessions) as db:
        return db.scalar(select(func.max(AuditCheckpoint.size)))


def test_log_verifies_and_an_edited_event_is_named(cli, registry, history) -> None:
    events = _events(registry)
    ok = cli("audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert f"audit log intact: {len(events)} events sealed" in ok.output

    victim = next(e for e in events if e.tag == "version:download")
    with registry.engine.begin() as conn:
        conn.execute(
            update(AuditEvent.__table__)
            .where(AuditEvent.__table__.c.id == victim.id)
            .values(actor="someone-else@example.org")
        )
    edited = cli("audit", "verify")
    assert edited.exit_code == 1
    size = _checkpoint_size(registry)
    named = f"event #{victim.seq} (id {victim.id}): does not match what checkpoint {size} signed"
    assert f"{named} (version:download)" in edited.output
    assert f"first event that no longer matches: {named}" in edited.output


def test_deleted_events_are_named(cli, registry, history) -> None:
    events = _events(registry)
    middle, last = events[len(events) // 2], events[-1]
    with registry.engine.begin() as conn:
        conn.execute(delete(AuditEvent.__table__).where(AuditEvent.__table__.c.id == middle.id))
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"event #{middle.seq}: missing (next present is #{middle.seq + 1})" in result.output

    with registry.engine.begin() as conn:
        conn.execute(delete(AuditEvent.__table__).where(AuditEvent.__table__.c.id == last.id))
    result = cli("audit", "verify")
    assert (
        f"event #{last.seq}: missing: checkpoint {last.seq} covers {last.seq} events but the log "
        f"ends at #{last.seq - 1}" in result.output
    )


def test_an_edit_with_its_leaf_rewritten_is_still_caught(cli, registry, history) -> None:
    """Recomputing the edited event's leaf in the checkpoint row does not help: the leaves no
    longer hash to the signed root, and the span of events holding the edit is named."""
    events = _events(registry)
    victim = events[2]
    with unit_of_work(registry.sessions) as db:
        row = db.get(AuditEvent, victim.id)
        row.target = "forged"
        checkpoint = db.scalars(select(AuditCheckpoint)).one()
        leaves = checkpoint.leaves
        at = (victim.seq - 1) * 64
        fresh = merkle.leaf_hash(event_leaf(row)).hex()
        checkpoint.leaves = leaves[:at] + fresh + leaves[at + 64 :]
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"events #1-#{len(events)} do not hash to checkpoint {len(events)}'s signed root" in (
        result.output
    )


def test_pending_events_are_listed_never_lost(api, people, cli, registry, history) -> None:
    admin = people.token(people.user("root@example.org", admin=True), "read")
    listed = api("GET", "/api/v1/audit?action=version:download", token=admin).json["events"]
    assert len(listed) == 4 and all(e["seq"] is None for e in listed)
    before = cli("audit", "verify")
    assert before.exit_code == 0
    assert "0 events sealed" in before.output and f"{_count(registry)} pending" in before.output
    sealed = cli("audit", "seal")
    assert sealed.exit_code == 0 and "sealed" in sealed.output
    after = api("GET", "/api/v1/audit?action=version:download", token=admin).json["events"]
    assert [e["id"] for e in after] == [e["id"] for e in listed]
    assert all(isinstance(e["seq"], int) for e in after)
    assert cli("audit", "seal").output.strip() == "nothing pending"


def test_admins_query_and_export_events(api, people, cli, history, registry, gated_model) -> None:
    admin = people.token(people.user("root@example.org", admin=True), "read")
    assert api("GET", "/api/v1/audit", token=history["res"]).status_code == 403
    assert api("GET", "/api/v1/audit").status_code == 401

    downloads = api(
        "GET",
        f"/api/v1/audit?action=version:download&model={gated_model.repo_id}",
        token=admin,
    ).json["events"]
    assert [e["actor"] for e in downloads] == ["res@example.org"] * 2 + ["other@example.org"]
    assert downloads[0]["details"]["path"] == FILE
    by_actor = api("GET", "/api/v1/audit?actor=other@example.org", token=admin).json["events"]
    assert {e["action"] for e in by_actor} == {"token:create", "version:download"}
    by_prefix = api("GET", "/api/v1/audit?action=token:", token=admin).json["events"]
    assert {e["action"] for e in by_prefix} == {"token:create"}
    by_version = api(
        "GET", f"/api/v1/audit?version={gated_model.commit}&action=version:download", token=admin
    ).json["events"]
    assert len(by_version) == 3
    first_page = api("GET", "/api/v1/audit?limit=2", token=admin).json
    assert len(first_page["events"]) == 2
    after = first_page["next_after"]
    second_page = api("GET", f"/api/v1/audit?limit=2&after={after}", token=admin).json
    assert second_page["events"][0]["id"] > after
    assert not {e["id"] for e in first_page["events"]} & {e["id"] for e in second_page["events"]}
    later = registry.now().isoformat()
    assert (
        api("GET", f"/api/v1/audit?since={later}Z".replace("+00:00", ""), token=admin).json[
            "events"
        ]
        == []
    )
    assert api("GET", "/api/v1/audit?since=yesterday", token=admin).status_code == 400
    unknown = api("GET", "/api/v1/audit?action=version:downlaod", token=admin)
    assert unknown.status_code == 400 and "audit tags" in unknown.json["error"]

    as_csv = api("GET", "/api/v1/audit?format=csv&action=version:download", token=admin)
    assert as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert len(rows) == 4 and json.loads(rows[0]["details"])["path"] == FILE
    seal(registry)
    verified = api("GET", "/api/v1/audit/verify", token=admin).json
    assert verified["ok"] is True and verified["problems"] == [] and verified["pending"] == 0

    exported = cli("audit", "export", "--action", "version:download")
    assert exported.exit_code == 0
    lines = [json.loads(line) for line in exported.output.splitlines()]
    assert [line["action"] for line in lines] == ["version:download"] * 4
    exported_csv = cli("audit", "export", "--format", "csv", "--actor", "res@example.org")
    assert exported_csv.output.splitlines()[0].startswith("id,seq,time,action,actor")
    refused = cli("audit", "export", "--action", "nonsense")
    assert refused.exit_code == 2 and "unknown audit action 'nonsense'" in refused.output


def test_publishers_list_the_downloaders_of_a_version(
    api, people, registry, history, gated_model
) -> None:
    from registry.models import Version

    owner = people.token(
        people.user("pub@example.org", institution="demo", role="publisher"), "read"
    )
    outsider = people.token(
        people.user("pub@other.org", institution="other", role="institution-admin"), "admin"
    )
    url = f"/api/v1/models/{gated_model.repo_id}/versions/v1/downloads"
    assert api("GET", url, token=outsider).status_code == 403
    assert api("GET", url, token=history["res"]).status_code == 403

    # A withdrawn version's downloaders stay listable, so they can be notified.
    with unit_of_work(registry.sessions) as db:
        db.execute(
            update(Version).where(Version.commit == gated_model.commit).values(state="withdrawn")
        )
        db.commit()
    listed = api("GET", url, token=owner)
    assert listed.status_code == 200
    assert listed.json["state"] == "withdrawn"
    rows = {d["email"]: d for d in listed.json["downloaders"]}
    assert set(rows) == {"res@example.org", "other@example.org"}
    assert rows["res@example.org"]["downloads"] == 2
    assert rows["res@example.org"]["files"] == [FILE]

    as_csv = api("GET", f"{url}?format=csv", token=owner)
    assert as_csv.mimetype == "text/csv"
    assert "attachment" in as_csv.headers["Content-Disposition"]
    emails = [r["email"] for r in csv.DictReader(io.StringIO(as_csv.get_data(as_text=True)))]
    assert emails == ["res@example.org", "other@example.org"]
