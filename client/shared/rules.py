"""Rules the client and the registry share: ids, names, tags, digests and input text.

Standard library only, so the client, the registry and the trainer can all import it.
Every pattern matches the whole string (``\\Z``, never ``$``, which also accepts a trailing
newline): use ``.match`` or ``.fullmatch``, both mean the same here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

NAMESPACE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")
REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # a tag, or a revision name
COMMIT_RE = re.compile(r"[0-9a-f]{40}\Z")
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
ID_RE = re.compile(r"[0-9]{1,10}\Z")  # ASCII digits only: str.isdigit() also accepts '²'

ID_MAX = 2**31 - 1  # database integer ids (PostgreSQL ``integer``); larger cannot name a row


def parse_id(text: str) -> int | None:
    """``text`` as a database id: ASCII digits within the column range, else ``None``."""
    if not ID_RE.match(text):
        return None
    value = int(text)
    return value if value <= ID_MAX else None


def control_character(text: str, *, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control character (C0, DEL, C1) in ``text`` as ``U+XXXX``, or ``None``."""
    for char in text:
        code = ord(char)
        if (code < 32 or 127 <= code < 160) and char not in allowed:
            return f"U+{code:04X}"
    return None


def canonical_bytes(value: Mapping[str, Any]) -> bytes:
    """A manifest's canonical form: sorted keys, no whitespace, ASCII; the bytes signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def commit_id(manifest_bytes: bytes) -> str:
    """A version's 40-hex id: the first 160 bits of its canonical manifest's sha256."""
    return hashlib.sha256(manifest_bytes).hexdigest()[:40]
