"""Email addresses as the registry compares them: NFKC, case-insensitive, no look-alikes.

``normalize_email`` gives the form mail is sent to (NFKC, lower case) or says why the address
is refused: control, zero-width, bidi or other invisible characters, and letters of more than
one script in the local part or in the domain (a Cyrillic "а" inside a Latin name).
``email_key`` is what uniqueness is decided on (NFKC case folding, punycode labels decoded),
so ``Ana@Hosp.org`` and ``ａｎａ@hosp.org`` are one account.
"""

from __future__ import annotations

import re
import unicodedata

EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
MAX_LENGTH = 320
# Control, format (zero-width, bidi marks and overrides), separators, private use, unassigned.
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}
# Scripts written together in one name (Japanese mixes kanji and kana).
SCRIPT_FAMILIES = {"CJK": "HAN", "HIRAGANA": "HAN", "KATAKANA": "HAN", "IDEOGRAPHIC": "HAN"}


class AddressRefused(ValueError):
    """The address cannot name an account; the message says why."""


def normalize_email(raw: str) -> str:
    """The address as stored and mailed to (NFKC, lower case); raises ``AddressRefused``."""
    address = unicodedata.normalize("NFKC", raw.strip())
    for char in address:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise AddressRefused(
                f"contains the invisible or control character U+{ord(char):04X} "
                f"({unicodedata.name(char, 'unnamed')}); type the address again"
            )
    address = address.lower()
    if len(address) > MAX_LENGTH or not EMAIL_RE.fullmatch(address):
        raise AddressRefused("is not a valid email address")
    local, domain = address.rsplit("@", 1)
    # Each domain label is checked alone: "例え.jp" is fine, "exаmple.org" is not.
    parts = [(local, "local part")] + [(p, "domain") for p in _unicode_domain(domain).split(".")]
    for part, label in parts:
        scripts = _scripts(part)
        if len(scripts) > 1:
            raise AddressRefused(
                f"mixes {' and '.join(sorted(s.title() for s in scripts))} letters in its "
                f"{label} (a look-alike address); use the address exactly as your provider "
                "spells it"
            )
    return address


def email_key(address: str) -> str:
    """The caseless form two addresses are compared by (of an already normalized address)."""
    local, _, domain = address.rpartition("@")
    folded = f"{local}@{_unicode_domain(domain)}".casefold()
    return unicodedata.normalize("NFKC", folded)


def collision_key(raw: str) -> str:
    """``email_key`` of any stored address, refused characters dropped (for the migration)."""
    visible = "".join(
        c
        for c in unicodedata.normalize("NFKC", raw.strip())
        if unicodedata.category(c) not in REFUSED_CATEGORIES
    )
    return email_key(visible.lower())


def _unicode_domain(domain: str) -> str:
    """Punycode labels (``xn--…``) decoded, so a disguised look-alike is seen as one."""
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except UnicodeError:
                raise AddressRefused(f"has an invalid punycode label {label!r}") from None
        labels.append(label)
    return ".".join(labels)


def _scripts(text: str) -> set[str]:
    """The scripts of the letters in ``text`` (digits and punctuation belong to none)."""
    scripts = set()
    for char in text:
        if not char.isalpha():
            continue
        word = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
        scripts.add(SCRIPT_FAMILIES.get(word, word))
    return scripts
