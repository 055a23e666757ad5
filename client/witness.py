"""This machine as a witness of a registry's audit log.

At every pull the client fetches the registry's newest signed checkpoint, checks its
signature with the pinned registry keys, asks for a proof that it extends the newest one
held here (consistency), and keeps it. A registry that rewrote or truncated its log cannot
give that proof: the client then warns loudly and keeps both checkpoints as evidence
(``conflicts``); ``registry-client audit-witness`` shows them and exits 7, and its export is
what ``registry-server audit verify --witness FILE`` takes.

Stored in ``<config dir>/witness/<registry>.json``: a ``client.merkle`` witness document
plus ``"conflicts": [{"held", "offered", "reason", "seen_at"}]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import client.merkle as merkle
from client.config import locked_update, read_json
from client.errors import IntegrityError, NotFound
from client.verify import verify_signature

HISTORY = 256  # checkpoints kept; the newest is what the next pull is checked against

GetJson = Callable[..., Any]


class AuditLogInconsistent(IntegrityError):
    """The registry's new checkpoint does not extend the one this machine holds."""


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one look at the registry's log found."""

    checkpoint: dict[str, Any] | None
    extended_from: int | None  # the size held before, when a consistency proof was checked


class WitnessStore:
    """The checkpoints of one registry that this machine has seen."""

    def __init__(self, config_dir: Path, registry_slug: str, registry_url: str) -> None:
        self.path = Path(config_dir) / "witness" / f"{registry_slug}.json"
        self.url = registry_url

    def load(self) -> dict[str, Any]:
        data = read_json(self.path)
        document = merkle.witness_document(
            data.get("registry", self.url), data.get("keys", {}), data.get("checkpoints", [])
        )
        document["conflicts"] = list(data.get("conflicts", []))
        return document

    def latest(self) -> dict[str, Any] | None:
        checkpoints = self.load()["checkpoints"]
        return checkpoints[-1] if checkpoints else None

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """The stored document for changing; written back atomically on success."""
        with locked_update(self.path, self.load) as document:
            yield document


def observe(get_json: GetJson, store: WitnessStore, keys: Mapping[str, str]) -> Observation:
    """Fetch, check and keep the newest checkpoint; ``AuditLogInconsistent`` if it does
    not extend the one held (after recording both as evidence)."""
    try:
        record = get_json("/api/v1/audit/checkpoints/latest", auth=False)
    except NotFound:
        return Observation(None, None)  # nothing sealed yet, or a registry without a log
    body = _checked(record, keys)
    conflict = None
    with store.update() as document:
        held = document["checkpoints"][-1] if document["checkpoints"] else None
        extended_from = None
        if held is not None:
            try:
                extended_from = _check_extends(get_json, held, record)
            except merkle.ProofError as error:
                conflict = str(error)
                _keep_conflict(document, held, record, conflict)
        if conflict is None and (
            held is None or merkle.parse_checkpoint(held)["size"] < body["size"]
        ):
            document["keys"].update({k: v for k, v in keys.items() if k == body["key_id"]})
            entry = {**record, "seen_at": _now()}
            document["checkpoints"] = [*document["checkpoints"], entry][-HISTORY:]
    if conflict is not None:
        raise AuditLogInconsistent(
            f"The registry's audit log no longer extends the checkpoint this machine holds "
            f"({conflict}): its history was rewritten or truncated. Both signed checkpoints "
            f"are kept in {store.path}; send them to the registry's operators and your "
            "compliance office (registry-client audit-witness --export FILE)."
        )
    return Observation(record, extended_from)


def _checked(record: Any, keys: Mapping[str, str]) -> dict[str, Any]:
    try:
        return merkle.check_signature(record, dict(keys), verify_signature)
    except merkle.ProofError as error:
        raise IntegrityError(f"The registry's audit checkpoint does not verify: {error}") from None


def _check_extends(get_json: GetJson, held: dict[str, Any], new: dict[str, Any]) -> int:
    """The held size, once the registry proved ``new`` extends ``held``."""
    old, fresh = merkle.parse_checkpoint(held), merkle.parse_checkpoint(new)
    if fresh["size"] < old["size"]:
        raise merkle.ProofError(f"it shrank from {old['size']} to {fresh['size']} events")
    if fresh["size"] == old["size"]:
        merkle.verify_consistency(
            old["size"], fresh["size"], bytes.fromhex(old["root"]), bytes.fromhex(fresh["root"]), []
        )
        return old["size"]
    answer = get_json(
        "/api/v1/audit/consistency",
        auth=False,
        params={"from": old["size"], "to": fresh["size"]},
    )
    if not isinstance(answer, dict):
        raise merkle.ProofError("the registry sent a malformed consistency proof")
    merkle.verify_consistency(
        old["size"],
        fresh["size"],
        bytes.fromhex(old["root"]),
        bytes.fromhex(fresh["root"]),
        merkle.hex_list(answer.get("proof"), "the consistency proof"),
    )
    return old["size"]


def _keep_conflict(
    document: dict[str, Any], held: dict[str, Any], offered: dict[str, Any], reason: str
) -> None:
    known = {json.dumps(c.get("offered"), sort_keys=True) for c in document["conflicts"]}
    if json.dumps(offered, sort_keys=True) not in known:
        document["conflicts"].append(
            {"held": held, "offered": offered, "reason": reason, "seen_at": _now()}
        )


def verify_receipt(receipt: Any, keys: Mapping[str, str]) -> dict[str, Any]:
    """The event a receipt (``GET /api/v1/audit/events/<id>/proof``) proves is in the log
    at a signed checkpoint; ``IntegrityError`` says what does not check out."""
    if not isinstance(receipt, dict) or not isinstance(receipt.get("leaf"), str):
        raise IntegrityError("A receipt needs the event's 'leaf' text")
    body = _checked(receipt.get("checkpoint"), keys)
    leaf = receipt["leaf"].encode("ascii")
    try:
        event = json.loads(leaf)
        index = event["seq"] - 1
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf),
            index,
            body["size"],
            merkle.hex_list(receipt.get("path"), "the receipt's path"),
            bytes.fromhex(body["root"]),
        )
    except (ValueError, KeyError, TypeError, merkle.ProofError) as error:
        raise IntegrityError(
            f"The receipt does not prove the event is in the log: {error}"
        ) from None
    return event


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
