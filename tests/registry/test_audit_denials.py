"""A refused download is audited: who tried to get which weights, and what was missing."""

from __future__ import annotations

from sqlalchemy import select

from registry.unit_of_work import unit_of_work


def test_denied_download_is_recorded_with_what_was_missing(client, registry, gated_model, people):
    from registry.models import AuditEvent

    user = people.user("curious@example.org")
    token = people.token(user, "read")
    url = f"/{gated_model.repo_id}/resolve/main/model_index.json"
    anonymous = client.get(url)
    assert anonymous.status_code == 401
    refused = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403

    with unit_of_work(registry.sessions) as db:
        events = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.tag == "version:download-denied")
            .order_by(AuditEvent.id)
        ).all()
    assert [e.actor for e in events] == ["anonymous", "curious@example.org"]
    assert all(e.target == f"{gated_model.repo_id}@{gated_model.commit}" for e in events)
    assert "credentialed" in events[1].details["missing"]
    with unit_of_work(registry.sessions) as db:
        assert not db.scalars(select(AuditEvent).where(AuditEvent.tag == "version:download")).all()
