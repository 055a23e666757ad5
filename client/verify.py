"""Trusting a manifest: the registry's and the publisher's signatures against pinned keys,
and that it is not older than one this machine already verified (rollback).

Key rule (registry keys; institution keys follow the same rule per institution):

1. First contact (``login`` or the first pull) pins every key the registry lists that
   verifies as ``key_id == sha256(public_key)`` (trust on first use).
2. A manifest signed by a pinned key must verify with the *pinned* public key; the
   registry's listing is never used for a key already pinned.
3. A manifest signed by a key that is not pinned is accepted automatically only as a
   *rotation*: the new key is listed by the registry, and at least one pinned key is still
   listed unchanged (typically marked retired). The new key is then pinned, and a notice
   says so.
4. Anything else - the pinned keys are gone from the listing or listed with other bytes -
   is a *changed key*: refused (exit 8) until the user accepts it explicitly with
   ``registry-client trust-key`` or ``pull --accept-new-key``.

Rollback rule: along a repo ``published_at`` only grows. When ``main`` (a moving ref) resolves
to a manifest older than the newest one this machine verified for that repo, it is refused;
a tag must keep naming the commit it named before. A 40-hex commit id names its manifest by
hash, so asking for an older version explicitly by commit id is allowed. One exception
(``RegistryClient.resolve``): an older ``main`` is accepted, with a notice, when the registry
shows the newer verified version as withdrawn - withdrawal moves ``main`` back by design.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client.cache import COMMIT_RE
from client.errors import IntegrityError, KeyChanged, RollbackRefused, SignatureInvalid
from client.manifest import Manifest, manifest_bytes
from client.trust import TrustStore

Notify = Callable[[str], None]
KeyListing = Callable[[], dict[str, "ListedKey"]]


@dataclasses.dataclass(frozen=True)
class ListedKey:
    key_id: str
    public_key: str
    retired: bool = False
    revoked_at: str | None = None


def fingerprint(public_key: str) -> str:
    """A short, human-comparable fingerprint of a base64 raw Ed25519 key."""
    digest = hashlib.sha256(_b64(public_key, "public key")).hexdigest()
    return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 24, 4))


def key_id_of(public_key: str) -> str:
    return hashlib.sha256(_b64(public_key, "public key")).hexdigest()


def parse_key_listing(payload: Any) -> dict[str, ListedKey]:
    """``{"keys": [...]}`` from the registry → key_id → key (ids must match the bytes)."""
    items = payload.get("keys") if isinstance(payload, dict) else None
    keys: dict[str, ListedKey] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        key_id, public_key = str(item.get("key_id", "")), str(item.get("public_key", ""))
        try:
            valid = key_id == key_id_of(public_key) and len(_b64(public_key, "key")) == 32
        except IntegrityError:
            valid = False
        if not valid:
            continue  # a listed key whose id is not its hash is ignored, never trusted
        keys[key_id] = ListedKey(
            key_id,
            public_key,
            retired=bool(item.get("retired_at")) or item.get("active") is False,
            revoked_at=item.get("revoked_at"),
        )
    return keys


def unchanged_keys(pinned: Mapping[str, str], listed: Mapping[str, ListedKey]) -> list[str]:
    """Pinned key ids the registry still lists with the same public key."""
    return [k for k, pub in pinned.items() if k in listed and listed[k].public_key == pub]


def verify_signature(public_key: str, signature: str, message: bytes) -> bool:
    """Ed25519 check of ``signature`` (base64) over ``message`` with a base64 raw key."""
    try:
        key = Ed25519PublicKey.from_public_bytes(_b64(public_key, "public key"))
        key.verify(_b64(signature, "signature"), message)
    except (InvalidSignature, ValueError, IntegrityError):
        return False
    return True


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise IntegrityError(f"Malformed base64 {what}") from None


class ManifestVerifier:
    """Signatures and order of manifests for one registry, against this machine's pins."""

    def __init__(
        self,
        trust: TrustStore,
        *,
        registry_keys: KeyListing | None,
        institution_keys: Callable[[str], dict[str, ListedKey]] | None,
        notify: Notify,
        registry_url: str,
    ) -> None:
        self.trust = trust
        self.registry_listing = registry_keys
        self.institution_listing = institution_keys
        self.notify = notify
        self.url = registry_url

    # registry signature ----------------------------------------------------------------
    def pin_on_first_contact(self) -> dict[str, str]:
        """Pin the registry's listed keys if none are pinned yet; the pinned set."""
        pinned = self.trust.registry_keys()
        if pinned or self.registry_listing is None:
            return pinned
        listed = {k: v for k, v in self.registry_listing().items() if v.revoked_at is None}
        if not listed:
            raise SignatureInvalid(f"The registry at {self.url} lists no signing keys")
        self.trust.replace_registry_keys({k: v.public_key for k, v in listed.items()}, "first-use")
        shown = ", ".join(fingerprint(v.public_key) for v in listed.values())
        self.notify(f"Pinned the signing key(s) of {self.url} on first use: {shown}")
        return self.trust.registry_keys()

    def pin_at_login(self, *, accept_new_key: bool) -> None:
        """First login pins; a later login refuses a changed key (rule 4), admits a rotation."""
        pinned = self.trust.registry_keys()
        if not pinned:
            self.pin_on_first_contact()
            return
        listed = self.registry_listing() if self.registry_listing else {}
        active = {k: v for k, v in listed.items() if not v.retired and v.revoked_at is None}
        unknown = [v for k, v in active.items() if k not in pinned]
        if not unknown:
            return
        if not accept_new_key and not unchanged_keys(pinned, listed):
            was = ", ".join(fingerprint(p) for p in pinned.values())
            now = ", ".join(fingerprint(k.public_key) for k in unknown)
            raise KeyChanged(
                f"WARNING: the signing key of {self.url} has CHANGED (pinned {was}; now {now}) "
                "and no pinned key is listed any more. Check the fingerprint with the "
                "registry's operators, then log in again with --accept-new-key or run "
                "registry-client trust-key."
            )
        how = "accepted at login" if accept_new_key else "rotation at login"
        for key in unknown:
            self.trust.pin_registry_key(key.key_id, key.public_key, how)
            self.notify(f"NOTICE: now also trusting {self.url}'s key {fingerprint(key.public_key)}")

    def check_registry_signature(self, manifest: Manifest, *, accept_new_key: bool) -> str:
        """Verify the registry's signature; returns the key id that verified it."""
        record, raw = manifest.record, manifest_bytes(manifest)
        key_id, signature = record.get("key_id"), record.get("signature")
        if not key_id or not signature:
            raise SignatureInvalid(f"The manifest of {manifest.repo} is not signed by the registry")
        pinned = self.pin_on_first_contact()
        if key_id not in pinned:
            self._admit_registry_key(str(key_id), pinned, manifest.repo, accept_new_key)
            pinned = self.trust.registry_keys()
        if verify_signature(pinned[key_id], str(signature), raw):
            return str(key_id)
        listed = self.registry_listing() if self.registry_listing else {}
        if key_id in listed and listed[key_id].public_key != pinned[key_id]:
            raise KeyChanged(
                f"The registry's key {key_id[:16]}… changed: pinned "
                f"{fingerprint(pinned[key_id])}, now listed as "
                f"{fingerprint(listed[key_id].public_key)}. Refusing {manifest.repo}."
            )
        raise SignatureInvalid(
            f"The manifest of {manifest.repo}@{manifest.commit} claims key {key_id[:16]}… but its "
            "signature does not verify with that pinned key: it was signed by another key or "
            "altered. Nothing was stored."
        )

    def _admit_registry_key(
        self, key_id: str, pinned: dict[str, str], repo: str, accept_new_key: bool
    ) -> None:
        listed = self.registry_listing() if self.registry_listing else {}
        new = listed.get(key_id)
        if new is None or new.revoked_at is not None:
            raise KeyChanged(
                f"The manifest of {repo} is signed by key {key_id[:16]}…, which the registry at "
                f"{self.url} does not list as a valid signing key. Refusing it."
            )
        still_listed = unchanged_keys(pinned, listed)
        if accept_new_key:
            self.trust.pin_registry_key(key_id, new.public_key, "accepted explicitly")
            self.notify(f"Accepted and pinned the registry key {fingerprint(new.public_key)}")
        elif still_listed:
            self.trust.pin_registry_key(key_id, new.public_key, f"rotation from {still_listed[0]}")
            self.notify(
                f"NOTICE: the registry at {self.url} rotated its signing key. Now also trusting "
                f"{fingerprint(new.public_key)}, listed beside the pinned key "
                f"{fingerprint(pinned[still_listed[0]])}."
            )
        else:
            was = ", ".join(fingerprint(pub) for pub in pinned.values())
            raise KeyChanged(
                f"WARNING: the signing key of the registry at {self.url} has CHANGED. Pinned: "
                f"{was}; the manifest of {repo} is signed by {fingerprint(new.public_key)} and no "
                "pinned key is listed any more. This happens when the registry was rebuilt - or "
                "when someone impersonates it. Check the new fingerprint with the registry's "
                "operators, then run 'registry-client trust-key "
                f"{key_id}' (or pull with --accept-new-key)."
            )

    # publisher signature ---------------------------------------------------------------
    def check_publisher_signature(self, manifest: Manifest) -> str | None:
        """Verify the institution's signature when present; returns its key id."""
        record = manifest.record
        key_id, signature = record.get("publisher_key_id"), record.get("publisher_signature")
        if not signature:
            if self.trust.institution_keys(manifest.institution):
                self.notify(
                    f"NOTICE: {manifest.repo}@{manifest.commit} has no publisher signature, "
                    f"though {manifest.institution} signed versions this machine verified before."
                )
            return None
        if not key_id:
            raise SignatureInvalid(f"The publisher signature of {manifest.repo} names no key")
        institution = manifest.institution
        pinned = self.trust.institution_keys(institution)
        listed = self.institution_listing(institution) if self.institution_listing else {}
        if key_id not in pinned:
            self._admit_institution_key(institution, str(key_id), pinned, listed, manifest)
            pinned = self.trust.institution_keys(institution)
        listed_key = listed.get(str(key_id))
        if listed_key is not None and listed_key.revoked_at is not None:
            revoked = dt.datetime.fromisoformat(listed_key.revoked_at.replace("Z", "+00:00"))
            if revoked <= manifest.published_at:
                raise SignatureInvalid(
                    f"{institution}'s key {key_id[:16]}… was revoked on {revoked:%Y-%m-%d}, "
                    f"before {manifest.repo}@{manifest.commit} was published; refusing it."
                )
        if not verify_signature(pinned[key_id], str(signature), manifest_bytes(manifest)):
            raise SignatureInvalid(
                f"The publisher signature of {manifest.repo}@{manifest.commit} does not verify "
                f"with {institution}'s pinned key {key_id[:16]}…; refusing it."
            )
        return str(key_id)

    def _admit_institution_key(
        self,
        institution: str,
        key_id: str,
        pinned: dict[str, str],
        listed: dict[str, ListedKey],
        manifest: Manifest,
    ) -> None:
        new = listed.get(key_id)
        if new is None:
            raise SignatureInvalid(
                f"The manifest of {manifest.repo} is signed by a key {key_id[:16]}… that "
                f"{institution} has not registered; refusing it."
            )
        still_listed = unchanged_keys(pinned, listed)
        if not pinned:
            how, note = "first-use", "Pinned"
        elif still_listed:
            how, note = f"rotation from {still_listed[0]}", "NOTICE: rotated; now also trusting"
        else:
            raise KeyChanged(
                f"WARNING: {institution}'s publisher key has CHANGED: the manifest of "
                f"{manifest.repo} is signed by {fingerprint(new.public_key)} and no key pinned "
                f"for {institution} is listed any more. Check it with {institution}, then run "
                f"'registry-client trust-key --institution {institution} {key_id}'."
            )
        self.trust.pin_institution_key(institution, key_id, new.public_key, how)
        self.notify(f"{note} {institution}'s publisher key {fingerprint(new.public_key)}")

    # order -----------------------------------------------------------------------------
    def check_order(self, manifest: Manifest, revision: str) -> None:
        """Refuse a rollback: ``main`` older than what was seen, or a tag that moved."""
        state = self.trust.repo_state(manifest.repo)
        newest = state["newest"]
        if revision == "main" and newest is not None:
            seen = dt.datetime.fromisoformat(newest["published_at"])
            if manifest.published_at < seen:
                raise RollbackRefused(
                    f"Rollback refused: {manifest.repo}@main now resolves to {manifest.commit} "
                    f"published {manifest.published_at:%Y-%m-%d %H:%M:%S}Z, older than "
                    f"{newest['commit']} (published {seen:%Y-%m-%d %H:%M:%S}Z) which this machine "
                    "already verified. If the newer version was withdrawn, pull an explicit "
                    f"revision: registry-client pull {manifest.repo}@<commit>."
                )
        elif not COMMIT_RE.match(revision) and revision != "main":
            before = state["tags"].get(revision)
            if before is not None and before != manifest.commit:
                raise RollbackRefused(
                    f"Tag {revision} of {manifest.repo} now names {manifest.commit}, but it "
                    f"named {before} before; published tags never move. Refusing it."
                )

    def remember(self, manifest: Manifest, revision: str) -> None:
        tag = revision if revision != "main" and not COMMIT_RE.match(revision) else None
        self.trust.record_manifest(
            manifest.repo, manifest.commit, manifest.data["published_at"], tag=tag
        )
