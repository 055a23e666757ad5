"""Checking the stored log against every signed checkpoint and against witnesses.

Each checkpoint must be signed by a key whose private part this installation holds
(``registry.publishing.signing.confirmed_keys``: a key row someone added to the database
does not count), its recorded leaves must hash to its signed root, and every event must
hash to its leaf: the first event that no longer does is named. Witness checkpoints (kept
by clients, institutions, the sealer's own file) must match the log as it is now, which
catches a history rewritten *and re-signed* by someone holding the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import client.merkle as merkle
from registry.audit.proofs import split_leaves
from registry.audit.sealer import checkpoint_record
from registry.audit.services import event_leaf
from registry.config import Settings
from registry.models import AuditCheckpoint, AuditEvent
from registry.publishing.signing import confirmed_keys, list_keys, verify


@dataclasses.dataclass(frozen=True)
class LogProblem:
    """One way the log differs from what was signed; ``seq`` is the first event concerned."""

    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        if self.seq is None:
            return self.problem
        ident = f"event #{self.seq}" + (f" (id {self.event_id})" if self.event_id else "")
        return f"{ident}: {self.problem}"


@dataclasses.dataclass(frozen=True)
class Witness:
    """Checkpoints held outside the database, and the keys their holder trusted."""

    name: str
    keys: dict[str, str]
    checkpoints: list[dict[str, Any]]


@dataclasses.dataclass
class VerifyReport:
    problems: list[LogProblem] = dataclasses.field(default_factory=list)
    sealed: int = 0
    checkpoints: int = 0
    pending: int = 0
    witnessed: int = 0

    @property
    def first_mismatch(self) -> LogProblem | None:
        """The problem naming the earliest event (the first one that no longer matches)."""
        named = [p for p in self.problems if p.seq is not None]
        return min(named, key=lambda p: p.seq or 0) if named else None


def verify_log(
    db: Session,
    settings: Settings,
    witnesses: Sequence[Witness] = (),
    *,
    trusted_keys: dict[str, str] | None = None,
) -> VerifyReport:
    """Walk every checkpoint and sealed event in order; report what no longer matches."""
    report = VerifyReport()
    trusted = {**confirmed_keys(db, settings), **(trusted_keys or {})}
    listed = {row.key_id: row.public_key for row in list_keys(db)}
    witnessed = _witness_bodies(report, witnesses, trusted, listed)
    walk = _Walk(report, {body["size"] for _, body in witnessed}, _sealed_events(db))
    for row in _checkpoints(db):
        report.checkpoints += 1
        walk.add_checkpoint(row, _signed_body(report, row, trusted, listed))
    walk.finish()
    report.pending = (
        db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))) or 0
    )
    for name, body in witnessed:
        walk.check_witness(name, body, db)
    return report


class _Events:
    """Sealed events in order, read in batches, with one event of look-ahead."""

    def __init__(self, rows: Iterator[AuditEvent]) -> None:
        self._rows = rows
        self.next: AuditEvent | None = next(rows, None)

    def take(self) -> AuditEvent:
        event, self.next = self.next, next(self._rows, None)
        assert event is not None
        return event


def _sealed_events(db: Session, batch: int = 1000) -> _Events:
    def rows() -> Iterator[AuditEvent]:
        last = 0
        while found := db.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all():
            yield from found
            last = found[-1].seq or last
            for row in found:  # keep memory flat on a long log
                db.expunge(row)

    return _Events(rows())


def _checkpoints(db: Session, batch: int = 200) -> Iterator[AuditCheckpoint]:
    last = -1
    while found := db.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.size > last)
        .order_by(AuditCheckpoint.size)
        .limit(batch)
    ).all():
        yield from found
        last = found[-1].size
        for row in found:
            db.expunge(row)


class _Walk:
    """The log as signed and as the events hash now, checked one segment at a time.

    A segment runs from an *anchor* (a tree edge known to be signed: the start, or a
    checkpoint's) to the next checkpoint whose signature verifies. If the recorded leaves of
    the segment extend the anchor to that signed root, they are the leaves that were signed
    and each event is compared with its own leaf (naming the exact event); otherwise only
    the segment as a whole can be compared.
    """

    def __init__(self, report: VerifyReport, witness_sizes: set[int], events: _Events) -> None:
        self.report = report
        self.events = events
        self.anchor: list[bytes] | None = []  # signed tree edge at ``checked``; None if unknown
        self.checked = 0  # events compared so far
        self.covered = 0  # events the checkpoints seen so far cover
        self.segment: list[bytes] = []  # recorded leaves from ``checked`` to ``covered``
        self.segment_ok = True
        self.ended = False
        self.actual: list[bytes] = []  # the tree the stored events make now
        self.actual_size = 0
        self.witness_sizes = witness_sizes
        self.actual_roots: dict[int, bytes] = {}

    def add_checkpoint(self, row: AuditCheckpoint, body: dict[str, Any] | None) -> None:
        size = body["size"] if body is not None else row.size
        if size <= self.covered:
            self._problem(
                None, None, f"checkpoint {size} does not follow checkpoint {self.covered}"
            )
            return
        leaves = split_leaves(row.leaves)
        if len(leaves) != size - self.covered:
            self.segment_ok = False
        self.segment += leaves
        self.covered = size
        if body is not None:  # a signed root: the segment ends here
            self._resolve(size, body["root"], [bytes.fromhex(h) for h in row.frontier or []])

    def _resolve(self, size: int, root: str, stored_edge: list[bytes]) -> None:
        start, anchor = self.checked, self.anchor
        authentic = (
            anchor is not None
            and self.segment_ok
            and _extend(anchor, start, self.segment).hex() == root
        )
        recomputed = []
        for seq in range(start + 1, size + 1):
            found = self._leaf_at(seq, size)
            if found is None:
                break
            event, digest = found
            recomputed.append(digest)
            if authentic and event is not None and digest != self.segment[seq - start - 1]:
                self._problem(
                    seq, event.id, f"does not match what checkpoint {size} signed ({event.tag})"
                )
        if authentic:
            assert anchor is not None
            self.anchor = _frontier(anchor, start, self.segment)
        else:
            self._unnamed(start, size, root, recomputed)
            self.anchor = stored_edge if merkle.frontier_root(stored_edge).hex() == root else None
        self.checked, self.segment, self.segment_ok = size, [], True

    def _unnamed(self, start: int, size: int, root: str, recomputed: list[bytes]) -> None:
        """The recorded leaves are not the signed ones: compare the segment as a whole."""
        span = f"events #{start + 1}-#{size}"
        if self.anchor is None:
            self._problem(
                start + 1,
                None,
                f"{span} cannot be checked against a signed root: the checkpoints before "
                f"checkpoint {size} were altered",
            )
        elif self.ended or _extend(self.anchor, start, recomputed).hex() != root:
            if not self.ended:
                self._problem(
                    start + 1,
                    None,
                    f"{span} do not hash to checkpoint {size}'s signed root (its recorded "
                    "leaves were rewritten too, so the changed event is somewhere in this span)",
                )
        else:
            self._problem(
                None,
                None,
                f"checkpoint {size}: its recorded leaves were altered (the events still match "
                "its signed root)",
            )

    def _leaf_at(self, seq: int, size: int) -> tuple[AuditEvent | None, bytes] | None:
        """(the event at ``seq``, its leaf hash now); None once the log has ended."""
        events = self.events
        if events.next is None:
            if not self.ended:
                self._problem(
                    seq,
                    None,
                    f"missing: checkpoint {size} covers {size} events but the log ends at "
                    f"#{seq - 1} (events at the end were removed)",
                )
                self.ended = True
            return None
        if events.next.seq != seq:
            self._problem(seq, None, f"missing (next present is #{events.next.seq})")
            self._add_actual(merkle.EMPTY_ROOT)  # keeps later positions aligned
            return None, merkle.EMPTY_ROOT
        event = events.take()
        digest = merkle.leaf_hash(event_leaf(event))
        self._add_actual(digest)
        return event, digest

    def _add_actual(self, leaf: bytes) -> None:
        self.actual = merkle.frontier_append(self.actual, self.actual_size, leaf)
        self.actual_size += 1
        if self.actual_size in self.witness_sizes:
            self.actual_roots[self.actual_size] = merkle.frontier_root(self.actual)

    def finish(self) -> None:
        if self.checked < self.covered:
            start = self.checked
            for seq in range(start + 1, self.covered + 1):
                if self._leaf_at(seq, self.covered) is None:
                    break
            self._problem(
                start + 1,
                None,
                f"events #{start + 1}-#{self.covered} are covered only by checkpoints whose "
                "signatures do not verify",
            )
        extra, first = 0, None
        while self.events.next is not None:
            event = self.events.take()
            first = first or event
            extra += 1
            self._add_actual(merkle.leaf_hash(event_leaf(event)))
        if first is not None:
            self._problem(
                first.seq,
                first.id,
                f"{extra} event(s) from here on carry a place in the log but no checkpoint "
                "covers them (numbered outside the sealer)",
            )
        self.report.sealed = self.actual_size

    def check_witness(self, name: str, body: dict[str, Any], db: Session) -> None:
        size, when = body["size"], body["time"]
        self.report.witnessed += 1
        if size > self.actual_size:
            self._problem(
                self.actual_size + 1,
                None,
                f"missing: {name} holds checkpoint {size} (signed {when}) but the log ends at "
                f"#{self.actual_size} (events at the end were removed)",
            )
            return
        if self.actual_roots.get(size, b"").hex() == body["root"]:
            return
        ours = db.scalar(select(AuditCheckpoint.root).where(AuditCheckpoint.size == size))
        resigned = (
            " The database holds a different checkpoint of the same size signed with the "
            "registry's key: the history was rewritten and re-signed."
            if ours is not None and ours != body["root"]
            else ""
        )
        self._problem(
            None,  # a root alone cannot say which event: the span is in the text
            None,
            f"the log no longer matches checkpoint {size} (signed {when}) held by {name}: an "
            f"event at or before #{size} was changed, removed or inserted.{resigned}",
        )

    def _problem(self, seq: int | None, event_id: int | None, text: str) -> None:
        self.report.problems.append(LogProblem(seq, event_id, text))


def _frontier(frontier: list[bytes], size: int, leaves: Sequence[bytes]) -> list[bytes]:
    for offset, leaf in enumerate(leaves):
        frontier = merkle.frontier_append(frontier, size + offset, leaf)
    return frontier


def _extend(frontier: list[bytes], size: int, leaves: Sequence[bytes]) -> bytes:
    return merkle.frontier_root(_frontier(frontier, size, leaves))


def _signed_body(
    report: VerifyReport, row: AuditCheckpoint, trusted: dict[str, str], listed: dict[str, str]
) -> dict[str, Any] | None:
    """The checkpoint's signed body, or None (with a problem) when it does not verify."""
    try:
        body = merkle.check_signature(checkpoint_record(row), trusted, verify)
    except merkle.ProofError as error:
        kid = row.key_id
        why = str(error)
        if kid in listed and kid not in trusted:
            why = (
                f"checkpoint {row.size} is signed by key {kid[:16]}, whose private part this "
                "registry does not hold (a key added to the database, or a retired "
                "REGISTRY_SIGNING_KEY: pass it with --trust-key)"
            )
        report.problems.append(LogProblem(None, None, why))
        return None
    if body["size"] != row.size or body["root"] != row.root:
        report.problems.append(
            LogProblem(None, None, f"checkpoint {body['size']}: its columns differ from its body")
        )
    return body


def _witness_bodies(
    report: VerifyReport,
    witnesses: Sequence[Witness],
    trusted: dict[str, str],
    listed: dict[str, str],
) -> list[tuple[str, dict[str, Any]]]:
    """Every witness checkpoint whose signature verifies (others become problems)."""
    out = []
    for witness in witnesses:
        keys = {**listed, **witness.keys, **trusted}
        for record in witness.checkpoints:
            try:
                body = merkle.check_signature(record, keys, verify)
            except merkle.ProofError as error:
                report.problems.append(LogProblem(None, None, f"{witness.name}: {error}"))
                continue
            out.append((witness.name, body))
    return out
