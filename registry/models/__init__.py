"""All database models; importing this package registers every table on ``Base.metadata``."""

from registry.models.accounts import ApiToken, Institution, Membership, User
from registry.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from registry.models.credentials import CredentialApplication, DuaSignature, Training
from registry.models.identity import EmailLink
from registry.models.mail import OutboxMessage
from registry.models.notifications import NotificationPreference
from registry.models.repos import AccessRequest, Blob, File, Model, Tag, Version
from registry.models.signing import InstitutionKey, SigningKey
from registry.models.uploads import UploadFile, UploadSession
from registry.models.webhooks import Webhook

__all__ = [
    "AccessRequest",
    "ApiToken",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Blob",
    "CredentialApplication",
    "DuaSignature",
    "EmailLink",
    "File",
    "Institution",
    "InstitutionKey",
    "Membership",
    "Model",
    "NotificationPreference",
    "OutboxMessage",
    "SigningKey",
    "Tag",
    "Training",
    "UploadFile",
    "UploadSession",
    "User",
    "Version",
    "Webhook",
]
