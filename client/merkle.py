"""The audit log's Merkle tree and signed checkpoints, shared by the registry and its clients.

Standard library only: the registry builds trees and proofs with it, clients and witnesses
verify with it, so both sides agree on every byte. The tree is RFC 6962 / RFC 9162's
(Certificate Transparency): a leaf hashes ``0x00 || data``, an inner node ``0x01 || l || r``,
and a tree of ``n`` leaves splits at the largest power of two below ``n``.

A checkpoint is the canonical JSON of ``{"format", "registry", "size", "root", "time",
"key_id"}``, signed with the registry's Ed25519 key: it commits to the first ``size`` events
of the log in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

CHECKPOINT_FORMAT = "roentgen-registry/audit-checkpoint/v1"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof or checkpoint does not verify; the message says what failed."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves`` (leaf hashes, in log order)."""
    return _range_root(leaves, 0, len(leaves))


def _range_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[start]
    k = _split(n)
    return node_hash(_range_root(leaves, start, start + k), _range_root(leaves, start + k, end))


# Appending: the right edge of the tree ("frontier") is enough to extend it -----------------


def frontier_append(frontier: list[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier after appending ``leaf`` to a tree of ``size`` leaves.

    The frontier holds the roots of the perfect subtrees that make up the tree, largest
    first: one per set bit of ``size``.
    """
    frontier = [*frontier, leaf]
    size += 1
    while size & 1 == 0:  # two subtrees of equal height merge, as a binary carry
        right = frontier.pop()
        frontier[-1] = node_hash(frontier[-1], right)
        size >>= 1
    return frontier


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The tree hash of the tree a frontier describes."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for subtree in reversed(frontier[:-1]):
        root = node_hash(subtree, root)
    return root


# Proofs -------------------------------------------------------------------------------


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` (0-based) in the tree of the first ``size`` leaves."""
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _path(leaves, index, 0, size)


def _path(leaves: Sequence[bytes], index: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*_path(leaves, index, start, start + k), _range_root(leaves, start + k, end)]
    return [*_path(leaves, index - k, start + k, end), _range_root(leaves, start, start + k)]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``leaf`` is leaf ``index`` of the tree with ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise ProofError("the inclusion proof does not lead to the checkpoint's root")


def consistency_proof(leaves: Sequence[bytes], old: int, new: int) -> list[bytes]:
    """Proof that the tree of the first ``old`` leaves is a prefix of the first ``new``."""
    if not 0 < old <= new <= len(leaves):
        raise ValueError(f"no consistency proof from {old} to {new} leaves")
    return _subproof(leaves, old, 0, new, True)


def _subproof(leaves: Sequence[bytes], m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [_range_root(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, start, start + k, whole), _range_root(leaves, start + k, end)]
    return [*_subproof(leaves, m - k, start + k, end, False), _range_root(leaves, start, start + k)]


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless the tree ``new_root`` extends the tree ``old_root``."""
    if not 0 < old <= new:
        raise ProofError(f"a log cannot shrink from {old} to {new} events")
    if old == new:
        if proof or old_root != new_root:
            raise ProofError(f"two different roots for the same {old} events")
        return
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    if not path:
        raise ProofError("the consistency proof is empty")
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError(f"the log of {new} events does not extend the checkpoint of {old}")


# Checkpoints -------------------------------------------------------------------------------


def checkpoint_body(registry: str, size: int, root: bytes, time: str, key_id: str) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    body = {
        "format": CHECKPOINT_FORMAT,
        "registry": registry,
        "size": size,
        "root": root.hex(),
        "time": time,
        "key_id": key_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_checkpoint(record: Any) -> dict[str, Any]:
    """Check a checkpoint record's shape: ``{"body", "signature", ...}`` with a sound body."""
    if not isinstance(record, dict) or not isinstance(record.get("body"), str):
        raise ProofError("a checkpoint needs its signed 'body' (a JSON string)")
    if not isinstance(record.get("signature"), str):
        raise ProofError("a checkpoint needs its 'signature' (base64)")
    try:
        body = json.loads(record["body"])
    except ValueError:
        raise ProofError("a checkpoint's body is not JSON") from None
    if not isinstance(body, dict) or body.get("format") != CHECKPOINT_FORMAT:
        raise ProofError(f"a checkpoint's body must have format {CHECKPOINT_FORMAT}")
    size, root = body.get("size"), body.get("root")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ProofError("a checkpoint's size must be a positive integer")
    if not isinstance(root, str) or len(root) != 64 or not _is_hex(root):
        raise ProofError("a checkpoint's root must be 64 hex digits")
    if not isinstance(body.get("key_id"), str) or not isinstance(body.get("time"), str):
        raise ProofError("a checkpoint's body needs key_id and time")
    if record["body"].encode() != checkpoint_body(
        str(body.get("registry", "")), size, bytes.fromhex(root), body["time"], body["key_id"]
    ):
        raise ProofError("a checkpoint's body is not in canonical form")
    return body


def check_signature(
    record: dict[str, Any], keys: dict[str, str], verify: Callable[[str, str, bytes], bool]
) -> dict[str, Any]:
    """The parsed body of a checkpoint whose signature verifies with one of ``keys``."""
    body = parse_checkpoint(record)
    public = keys.get(body["key_id"])
    if public is None:
        raise ProofError(
            f"checkpoint {body['size']} is signed by unknown key {body['key_id'][:16]}"
        )
    if not verify(public, record["signature"], record["body"].encode()):
        raise ProofError(f"checkpoint {body['size']}: the signature does not verify")
    return body


def hex_list(values: Any, what: str) -> list[bytes]:
    """``[hex, ...]`` from a proof answer as bytes; ``ProofError`` if malformed."""
    if not isinstance(values, list) or not all(
        isinstance(v, str) and len(v) == 64 and _is_hex(v) for v in values
    ):
        raise ProofError(f"{what} must be a list of 64-hex-digit hashes")
    return [bytes.fromhex(v) for v in values]


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


# Witness files ---------------------------------------------------------------------------

WITNESS_FORMAT = "roentgen-registry/audit-witness/v1"


def witness_document(
    registry: str, keys: dict[str, str], checkpoints: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """What a witness holds: checkpoints it saw (oldest first) and the keys it trusted."""
    return {
        "format": WITNESS_FORMAT,
        "registry": registry,
        "keys": dict(sorted(keys.items())),
        "checkpoints": [
            {k: c[k] for k in ("body", "signature", "seen_at") if k in c} for c in checkpoints
        ],
    }


def parse_witness(document: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(keys, checkpoint records) from a witness file, a list of checkpoints or just one."""
    if isinstance(document, dict) and document.get("format") == WITNESS_FORMAT:
        keys, records = document.get("keys") or {}, document.get("checkpoints")
    elif isinstance(document, dict) and "body" in document:
        keys, records = {}, [document]
    else:
        keys, records = {}, document
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise ProofError("a witness file's 'keys' must map key ids to base64 public keys")
    if not isinstance(records, list) or not records:
        raise ProofError(
            f"a witness file must be a {WITNESS_FORMAT} document, a list of checkpoints or one "
            "checkpoint ({'body', 'signature'})"
        )
    for record in records:
        parse_checkpoint(record)
    return keys, records
