"""Credential evidence through the API: applications with admin decisions, training
certificates stored in the blob store and reviewed, DUA signatures; all audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

from sqlalchemy import select

from registry.unit_of_work import unit_of_work

APPLICATION = {
    "full_name": "Ada Lovelace",
    "affiliation": "Analytical Engine Hospital",
    "job_title": "Researcher",
    "reference_name": "Charles Babbage",
    "reference_email": "charles@example.org",
    "research_summary": "Synthetic chest X-rays for augmentation of rare findings.",
}
PDF = b"%PDF-1.4\n% test certificate\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
DUA = "physionet-credentialed-1.5.0"


def _tags(registry) -> list[str]:
    from registry.models import AuditEvent

    with unit_of_work(registry.sessions) as db:
        return list(db.scalars(select(AuditEvent.tag).order_by(AuditEvent.id)))


def test_credential_application_accept_reject_revoke(api, people, registry, gated_model):
    user = people.token(people.user("ada@example.org"), "write")
    admin_id = people.user("root@example.org", admin=True)
    admin = people.token(admin_id, "admin")

    missing = api("POST", "/api/v1/credentials", token=user, json={"full_name": "Ada"})
    assert missing.status_code == 422
    assert {p["field"] for p in missing.json["problems"]} >= {"affiliation", "research_summary"}

    first = api("POST", "/api/v1/credentials", token=user, json=APPLICATION)
    assert first.status_code == 201 and first.json["status"] == "pending"
    assert api("POST", "/api/v1/credentials", token=user, json=APPLICATION).status_code == 409
    assert api("GET", "/api/v1/credentials/review", token=user).status_code == 403

    queue = api("GET", "/api/v1/credentials/review?status=pending", token=admin)
    assert [a["user"] for a in queue.json] == ["ada@example.org"]
    url = f"/api/v1/credentials/{first.json['id']}/decision"
    assert api("POST", url, token=admin, json={"decision": "reject"}).status_code == 422
    rejected = api(
        "POST", url, token=admin, json={"decision": "reject", "reason": "reference unreachable"}
    )
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    mine = api("GET", "/api/v1/credentials", token=user).json
    assert mine[0]["reason"] == "reference unreachable"

    second = api("POST", "/api/v1/credentials", token=user, json=APPLICATION)
    assert second.status_code == 201
    url = f"/api/v1/credentials/{second.json['id']}/decision"
    assert api("POST", url, token=admin, json={"decision": "accept"}).json["status"] == "accepted"
    assert api("GET", "/api/v1/me", token=user).json["credentialed"] is True
    revoked = api("POST", url, token=admin, json={"decision": "revoke", "reason": "left the job"})
    assert revoked.json["status"] == "revoked"
    me = api("GET", "/api/v1/me", token=user).json
    assert me["credentialed"] is False
    assert me["tiers"]["credentialed"]["missing"][0]["message"].endswith(
        f"revoked on {registry.now():%Y-%m-%d}: left the job"
    )

    # Admins cannot credential themselves.
    own = api("POST", "/api/v1/credentials", token=admin, json=APPLICATION).json
    refused = api(
        "POST",
        f"/api/v1/credentials/{own['id']}/decision",
        token=admin,
        json={"decision": "accept"},
    )
    assert refused.status_code == 409
    tags = _tags(registry)
    for tag in ("credential:apply", "credential:reject", "credential:accept", "credential:revoke"):
        assert tag in tags


def test_training_certificate_upload_review_and_validity(api, people, registry):
    owner = people.token(people.user("ada@example.org"), "write")
    stranger = people.token(people.user("eve@example.org"), "admin")
    admin = people.token(people.user("root@example.org", admin=True), "admin")
    completed = (registry.now() - dt.timedelta(days=30)).date()

    not_pdf = api(
        "POST",
        "/api/v1/trainings",
        token=owner,
        data={
            "kind": "citi-dsor",
            "completed_on": completed.isoformat(),
            "certificate": (io.BytesIO(b"MZ\x90\x00 not a pdf"), "cert.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert not_pdf.status_code == 422
    both = api(
        "POST",
        "/api/v1/trainings",
        token=owner,
        json={"kind": "citi-dsor", "verification_url": "http://citi.example/x"},
    )
    assert both.status_code == 422
    unknown = api(
        "POST",
        "/api/v1/trainings",
        token=owner,
        json={"kind": "hipaa", "verification_url": "https://x.org"},
    )
    assert unknown.status_code == 422

    made = api(
        "POST",
        "/api/v1/trainings",
        token=owner,
        data={
            "kind": "citi-dsor",
            "completed_on": completed.isoformat(),
            "certificate": (io.BytesIO(PDF), "citi.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert made.status_code == 201, made.json
    sha = hashlib.sha256(PDF).hexdigest()
    assert made.json["certificate"]["sha256"] == sha
    with registry.blobs.open(sha) as stored:
        assert stored.read() == PDF

    cert_url = made.json["certificate"]["url"]
    assert api("GET", cert_url, token=owner).data == PDF
    assert api("GET", cert_url, token=admin).status_code == 200
    assert api("GET", cert_url, token=stranger).status_code == 403

    decision = f"/api/v1/trainings/{made.json['id']}/decision"
    assert api("POST", decision, token=stranger, json={"decision": "accept"}).status_code == 403
    accepted = api("POST", decision, token=admin, json={"decision": "accept"})
    assert accepted.status_code == 200
    expected = dt.datetime.combine(completed, dt.time(), dt.UTC) + dt.timedelta(days=1095)
    assert accepted.json["valid_until"] == expected.isoformat().replace("+00:00", "Z")
    assert api("POST", decision, token=admin, json={"decision": "accept"}).status_code == 409

    stale = api(
        "POST",
        "/api/v1/trainings",
        token=owner,
        json={
            "kind": "citi-dsor",
            "completed_on": "2019-01-02",
            "verification_url": "https://www.citiprogram.org/verify/?k=old",
        },
    ).json
    too_old = api(
        "POST",
        f"/api/v1/trainings/{stale['id']}/decision",
        token=admin,
        json={"decision": "accept"},
    )
    assert too_old.status_code == 409
    assert "expired on 2022-01-01" in too_old.json["error"]
    assert "training:submit" in _tags(registry) and "training:accept" in _tags(registry)

    huge = api(
        "POST",
        "/api/v1/trainings",
        token=owner,
        data={
            "kind": "citi-dsor",
            "certificate": (io.BytesIO(b"%PDF-" + b"0" * 11 * 2**20), "x.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert huge.status_code == 413


def test_dua_signature_records_name_time_and_text_hash(api, people, registry, gated_model):
    uid = people.user(
        "ada@example.org", credentialed=True, training_until=registry.now() + dt.timedelta(days=100)
    )
    token = people.token(uid, "write")
    listed = api("GET", "/api/v1/duas").json
    assert [d["id"] for d in listed] == [DUA]
    dua = api("GET", f"/api/v1/duas/{DUA}").json
    assert hashlib.sha256(dua["text"].encode()).hexdigest() == dua["sha256"]
    assert "https://physionet.org/content/mimic-cxr/view-dua/2.1.0/" in dua["text"]

    url = f"/{gated_model.repo_id}/resolve/main/model_index.json"
    assert api("GET", url, token=token).status_code == 403

    sign = f"/api/v1/duas/{DUA}/signatures"
    assert api("POST", sign, token=token, json={"full_name": "  "}).status_code == 422
    stale = api("POST", sign, token=token, json={"full_name": "Ada", "text_sha256": "0" * 64})
    assert stale.status_code == 409
    assert (
        api(
            "POST", "/api/v1/duas/nope-1.0/signatures", token=token, json={"full_name": "A"}
        ).status_code
        == 404
    )
    signed = api(
        "POST", sign, token=token, json={"full_name": "Ada Lovelace", "text_sha256": dua["sha256"]}
    )
    assert signed.status_code == 201
    assert signed.json["text_sha256"] == dua["sha256"]
    assert api("POST", sign, token=token, json={"full_name": "Ada Lovelace"}).status_code == 200
    assert api("GET", url, token=token).status_code == 200

    from registry.models import AuditEvent

    with unit_of_work(registry.sessions) as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.tag == "dua:sign"))
    assert event.details == {"full_name": "Ada Lovelace", "text_sha256": dua["sha256"]}
    assert event.actor == "ada@example.org"
