"""Existing accounts whose addresses collide once compared canonically, or that a new
registration would refuse: reported for an administrator to resolve, never merged."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from registry.accounts.addresses import AddressRefused, collision_key, normalize_email


@dataclasses.dataclass(frozen=True)
class AddressReport:
    keys: dict[int, str | None]  # user id -> its email_key; None for the later colliders
    collisions: list[list[tuple[int, str]]]  # accounts sharing one key, oldest first
    refused: list[tuple[int, str, str]]  # (id, address, why a registration would refuse it)

    def lines(self) -> list[str]:
        """The report in words, one line per finding."""
        out = []
        for group in self.collisions:
            (first_id, first), *others = group
            names = ", ".join(f"#{uid} {email!r}" for uid, email in others)
            out.append(
                f"accounts {names} collide with #{first_id} {first!r}: they were not merged; "
                f"only #{first_id} is found under the canonical address. Merge or disable them."
            )
        for uid, email, why in self.refused:
            out.append(f"account #{uid} {email!r}: its address {why}")
        return out


def report_addresses(rows: Iterable[tuple[int, str]]) -> AddressReport:
    """Keys for ``(id, email)`` rows (oldest id wins a key) and what collides or is refused."""
    keys: dict[int, str | None] = {}
    groups: dict[str, list[tuple[int, str]]] = {}
    refused = []
    for uid, email in sorted(rows):
        key = collision_key(email)
        groups.setdefault(key, []).append((uid, email))
        keys[uid] = key if len(groups[key]) == 1 else None
        try:
            normalize_email(email)
        except AddressRefused as why:
            refused.append((uid, email, str(why)))
    collisions = [group for group in groups.values() if len(group) > 1]
    return AddressReport(keys, collisions, refused)
