"""Every audit event tag, declared once: ``record_event`` refuses others, the docs table and
``registry-server audit tags`` are generated from it, and filters name it in their errors."""

from __future__ import annotations

import enum


class EventTag(enum.StrEnum):
    """``subject:action`` tags; each member's ``description`` says what the event records."""

    description: str

    def __new__(cls, value: str, description: str) -> EventTag:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    ACCOUNT_REGISTER = "account:register", "an account was created"
    ACCOUNT_LOGIN = "account:login", "a successful login"
    ACCOUNT_LOGIN_FAILED = (
        "account:login-failed",
        "a refused login (unknown email or wrong password)",
    )
    ACCOUNT_LOGOUT = "account:logout", "a logout"
    ACCOUNT_PASSWORD_CHANGE = "account:password-change", "a password change"
    ACCOUNT_TERMS_ACCEPT = "account:terms-accept", "the terms of use were accepted"
    ACCOUNT_VERIFICATION_SENT = (
        "account:verification-sent",
        "a link to verify the account's email address was mailed",
    )
    ACCOUNT_EMAIL_VERIFY = "account:email-verify", "an email address was verified by its link"
    ACCOUNT_EMAIL_CHANGE_REQUEST = (
        "account:email-change-request",
        "a new email address was asked for (a link went to it, a notice to the old one)",
    )
    ACCOUNT_EMAIL_CHANGE = "account:email-change", "the account's email address changed"
    ACCOUNT_PASSWORD_RESET_REQUEST = (
        "account:password-reset-request",
        "a password reset link was asked for (sent or not: the answer is the same)",
    )
    ACCOUNT_PASSWORD_RESET = (
        "account:password-reset",
        "a password was reset by its link (every other session ended)",
    )
    TOKEN_CREATE = "token:create", "an API token was created (its prefix and scope)"
    TOKEN_REVOKE = "token:revoke", "an API token was revoked"
    INSTITUTION_CREATE = "institution:create", "an institution was created"
    INSTITUTION_KEY_REGISTER = "institution:key-register", "an institution registered a public key"
    INSTITUTION_KEY_REVOKE = "institution:key-revoke", "an institution revoked a public key"
    MEMBERSHIP_SET = "membership:set", "a user joined an institution or changed role"
    MEMBERSHIP_REMOVE = "membership:remove", "a user left an institution"
    USER_UPDATE = "user:update", "an admin changed a user's status or roles"
    CREDENTIAL_APPLY = "credential:apply", "a credentialing application was submitted"
    CREDENTIAL_ACCEPT = "credential:accept", "a credentialing application was accepted"
    CREDENTIAL_REJECT = "credential:reject", "a credentialing application was rejected"
    CREDENTIAL_REVOKE = "credential:revoke", "an accepted credential was revoked"
    TRAINING_SUBMIT = "training:submit", "a training certificate was submitted"
    TRAINING_ACCEPT = "training:accept", "a training certificate was accepted"
    TRAINING_REJECT = "training:reject", "a training certificate was rejected"
    DUA_SIGN = "dua:sign", "a data use agreement version was signed"
    ACCESS_REQUEST_CREATE = "access-request:create", "access to a model was requested"
    ACCESS_REQUEST_ACCEPT = "access-request:accept", "an access request was accepted"
    ACCESS_REQUEST_REJECT = "access-request:reject", "an access request was rejected"
    ACCESS_REQUEST_REVOKE = "access-request:revoke", "an accepted access request was revoked"
    UPLOAD_OPEN = "upload:open", "an upload session was opened"
    UPLOAD_ABORT = "upload:abort", "an upload session was aborted (or failed validation)"
    UPLOAD_EXPIRE = "upload:expire", "an upload session expired"
    UPLOAD_LFS_OBJECT = "upload:lfs-object", "a Hugging Face LFS object was received"
    VERSION_SUBMIT = "version:submit", "a version was submitted for review"
    VERSION_PUBLISH = "version:publish", "a version was published (its commit and manifest)"
    VERSION_REJECT = "version:reject", "a version in review was rejected"
    VERSION_WITHDRAW = "version:withdraw", "a published version was withdrawn"
    VERSION_DOWNLOAD = "version:download", "a file of a version was downloaded (who, which file)"
    VERSION_DOWNLOAD_DENIED = (
        "version:download-denied",
        "a download was refused (who, which version, what was missing)",
    )
    WEBHOOK_CREATE = "webhook:create", "a webhook was subscribed (its URL and events)"
    WEBHOOK_DELETE = "webhook:delete", "a webhook was removed"
    SIGNING_KEY_ACTIVATE = "signing-key:activate", "a registry signing key became the active one"


def known_tag(tag: str) -> EventTag:
    """The declared tag ``tag``; ``ValueError`` names where to declare a new one."""
    try:
        return EventTag(tag)
    except ValueError:
        raise ValueError(
            f"undeclared audit tag {tag!r}: declare it in registry/audit/tags.py"
        ) from None


def check_filter(action: str) -> str:
    """An ``action`` filter (a tag or a ``subject:`` prefix); ``ValueError`` lists the choices."""
    if action in set(EventTag) or (
        action.endswith(":") and any(t.startswith(action) for t in EventTag)
    ):
        return action
    subjects = sorted({t.split(":", 1)[0] + ":" for t in EventTag})
    raise ValueError(
        f"unknown audit action {action!r}: use a tag (e.g. version:download) or one of the "
        f"prefixes {', '.join(subjects)}; registry-server audit tags lists every tag"
    )


def tags_table() -> str:
    """The Markdown table of every tag (docs/audit.md holds exactly this)."""
    lines = ["| tag | what it records |", "|---|---|"]
    lines += [f"| `{tag}` | {tag.description} |" for tag in EventTag]
    return "\n".join(lines) + "\n"
