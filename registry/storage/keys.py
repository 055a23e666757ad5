"""Validated names: sha256 digests, upload keys, and where a blob lives."""

from __future__ import annotations

import re

_SHA256 = re.compile(r"[0-9a-f]{64}")
_UPLOAD_KEY = re.compile(r"[A-Za-z0-9._-]{1,200}")


def check_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex characters, else raise ValueError."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"invalid sha256 {sha256!r}: expected 64 lowercase hex characters")
    return sha256


def is_upload_key(name: str) -> bool:
    """Whether ``name`` is 1-200 of ``[A-Za-z0-9._-]`` and not a dot name (never raises)."""
    return isinstance(name, str) and bool(_UPLOAD_KEY.fullmatch(name)) and name not in {".", ".."}


def check_upload_key(upload_key: str) -> str:
    """Return ``upload_key`` if ``is_upload_key`` accepts it, else raise ValueError."""
    if not is_upload_key(upload_key):
        raise ValueError(
            f"invalid upload key {upload_key!r}: use 1-200 characters of A-Z a-z 0-9 . _ -"
        )
    return upload_key


def blob_key(sha256: str) -> str:
    """The relative key of a blob: ``sha256/ab/cd/<full hex>``."""
    check_sha256(sha256)
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def is_sha256(name: str) -> bool:
    """Whether ``name`` is a well-formed sha256 (used when listing, never raises)."""
    return bool(_SHA256.fullmatch(name))


_META_PART = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}"
_META_NAME = re.compile(rf"{_META_PART}(/{_META_PART}){{0,7}}")


def check_meta_name(name: str) -> str:
    """Return ``name`` if it is a relative path of ``[A-Za-z0-9._-]`` parts (no dot names)."""
    if not isinstance(name, str) or not _META_NAME.fullmatch(name):
        raise ValueError(f"invalid metadata name {name!r}: use parts of A-Z a-z 0-9 . _ -")
    return name
