"""Answers of the account, token, institution and user routes."""

from __future__ import annotations

from typing import Literal

from registry.api.schemas import Answer, Body
from registry.api.schemas.common import (
    CredentialApplication,
    DuaSignature,
    Missing,
    Token,
    Training,
    User,
)


class LoginBody(Body):
    email: str = ""
    password: str = ""


class RegisterBody(Body):
    email: str = ""
    password: str = ""
    display_name: str = ""
    accept_terms: bool = False


class PasswordBody(Body):
    current_password: str = ""
    new_password: str = ""


class LinkTokenBody(Body):
    """The token from a mailed link (verify an address, confirm a change)."""

    token: str = ""


class EmailChangeBody(LoginBody):
    """The new address, and the current password to confirm it is you."""


class ForgotBody(Body):
    email: str = ""


class ResetBody(Body):
    token: str = ""
    new_password: str = ""


class TokenBody(Body):
    name: str = ""
    scope: Literal["read", "write", "admin"]
    expires_in_days: int | None = None


class InstitutionBody(Body):
    slug: str = ""
    name: str = ""


class MemberBody(Body):
    role: str = ""


class UserFlagsBody(Body):
    is_registry_admin: bool | None = None
    is_active: bool | None = None


class LoggedOut(Answer):
    logged_out: bool
    note: str


class TierStatus(Answer):
    eligible: bool
    missing: list[Missing]


class Me(User):
    credential_applications: list[CredentialApplication]
    credentialed: bool
    trainings: list[Training]
    dua_signatures: list[DuaSignature]
    tiers: dict[str, TierStatus]
    auth: dict[str, str | int | None]


class NewToken(Token):
    token: str
    note: str


class Institution(Answer):
    slug: str
    name: str


class Member(Answer):
    slug: str
    name: str
    role: str
    user_id: int
    email: str


class MemberRemoved(Answer):
    removed: str
    institution: str
