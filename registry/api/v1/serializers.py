"""How the registry API shows its objects: one serializer (and schema) per kind, shared."""

from __future__ import annotations

from typing import Any

from flask import g

from registry.models import ApiToken, CredentialApplication, Membership, Training, User, Version
from registry.repos import services as repos


def iso(value: Any) -> str | None:
    """An aware datetime as ISO 8601 with ``Z`` (None stays None)."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "email_verified": {"type": "boolean"},
        "display_name": {"type": "string"},
        "is_registry_admin": {"type": "boolean"},
        "institution": {"type": ["object", "null"]},
    },
}


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["field", "problem"],
    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
}


def problem_list(report: Any) -> list[dict[str, str]]:
    """A stored validation report in the one ``{field, problem}`` shape; rows written before
    the shapes were unified say ``{path, reason}`` and are translated on the way out."""
    return [
        {
            "field": str(item.get("field", item.get("path", ""))),
            "problem": str(item.get("problem", item.get("reason", ""))),
        }
        for item in (report if isinstance(report, list) else [])
        if isinstance(item, dict)
    ]


FILE_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
    },
}


VERSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "repo": {"type": "string"},
        "commit": {"type": ["string", "null"]},
        "state": {"enum": ["draft", "in-review", "published", "rejected", "withdrawn"]},
        "tag": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "base_model": {"type": ["string", "null"]},
        "tier": {"type": "string"},
        "dua": {"type": ["string", "null"]},
        "publisher": {"type": ["string", "null"]},
        "files": {"type": "array", "items": FILE_SCHEMA},
        "card_data": {"type": "object"},
        "validation_report": {"type": "array", "items": PROBLEM_SCHEMA},
        "publisher_signed": {"type": "boolean"},
        "manifest_url": {"type": ["string", "null"]},
    },
}


def user_dict(user: User) -> dict[str, Any]:
    membership = user.membership
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified_at is not None,
        "email_verified_at": iso(user.email_verified_at),
        "display_name": user.display_name,
        "is_registry_admin": user.is_registry_admin,
        "is_active": user.is_active,
        "created_at": iso(user.created_at),
        "terms_accepted_at": iso(user.terms_accepted_at),
        "institution": membership_dict(membership) if membership is not None else None,
    }


def membership_dict(membership: Membership) -> dict[str, Any]:
    return {
        "slug": membership.institution.slug,
        "name": membership.institution.name,
        "role": membership.role,
        "user_id": membership.user_id,
    }


def token_dict(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
    }


def application_dict(application: CredentialApplication) -> dict[str, Any]:
    return {
        "id": application.id,
        "user": application.user.email,
        "full_name": application.full_name,
        "affiliation": application.affiliation,
        "job_title": application.job_title,
        "reference_name": application.reference_name,
        "reference_email": application.reference_email,
        "research_summary": application.research_summary,
        "status": application.status,
        "reason": application.reason,
        "created_at": iso(application.created_at),
        "decided_at": iso(application.decided_at),
    }


def training_dict(training: Training) -> dict[str, Any]:
    return {
        "id": training.id,
        "user": training.user.email,
        "kind": training.kind,
        "status": training.status,
        "reason": training.reason,
        "completed_on": training.completed_on.isoformat() if training.completed_on else None,
        "verification_url": training.verification_url,
        "certificate": (
            {
                "filename": training.certificate_filename,
                "content_type": training.certificate_content_type,
                "sha256": training.certificate_sha256,
                "url": f"/api/v1/trainings/{training.id}/certificate",
            }
            if training.certificate_sha256
            else None
        ),
        "valid_until": iso(training.valid_until),
        "created_at": iso(training.created_at),
        "reviewed_at": iso(training.reviewed_at),
    }


def version_json(version: Version) -> dict[str, Any]:
    """A version as the registry API shows it (unpublished versions have no commit)."""
    db = g.db
    model = version.model
    base = version.base_version
    visible = version.state in repos.VISIBLE_STATES
    files = repos.version_files(db, version)
    return {
        "id": version.id,
        "repo": model.repo_id,
        "commit": version.commit if visible else None,
        "state": version.state,
        "tag": version.requested_tag,
        "tags": repos.version_tags(db, version),
        "base_model": f"{base.model.repo_id}@{base.commit}" if base is not None else None,
        "tier": model.tier,
        "dua": model.dua,
        "publisher": version.created_by.email if version.created_by else None,
        "created_at": iso(version.created_at),
        "submitted_at": iso(version.submitted_at),
        "published_at": iso(version.published_at),
        "reject_reason": version.reject_reason,
        "withdrawn_at": iso(version.withdrawn_at),
        "withdrawn_reason": version.withdrawn_reason,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
        "card_data": version.card_data or {},
        "validation_report": problem_list(version.validation_report),
        "publisher_signed": bool(version.publisher_signature),
        "manifest_url": (
            f"/api/v1/models/{model.repo_id}/versions/{version.commit}/manifest"
            if visible
            else None
        ),
    }
