"""Strict parsing of a single HTTP ``Range`` header."""

from __future__ import annotations

import re

from registry.errors import BadRequest, RangeNotSatisfiable

_RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)\Z")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return ``(start, end_exclusive)`` or None for the whole file."""
    if header is None:
        return None
    header = header.strip()
    if "," in header:
        raise RangeNotSatisfiable(
            "Multiple ranges are not supported; request one range, e.g. 'bytes=0-1023'",
            details={"size": size},
        )
    match = _RANGE_RE.match(header)
    if not match or (not match.group(1) and not match.group(2)):
        raise BadRequest(
            f"Malformed Range header {header!r}; use e.g. 'bytes=0-1023' or 'bytes=1024-'"
        )
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = int(last) + 1 if last else size
        if last and int(last) < start:
            raise BadRequest(f"Malformed Range header {header!r}: the end is before the start")
        end = min(end, size)
    else:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(
                "A zero-length suffix range selects no bytes", details={"size": size}
            )
        start, end = max(size - suffix, 0), size
    if start >= size:
        raise RangeNotSatisfiable(
            f"Range {header!r} starts at or past the end of the file ({size} bytes)",
            details={"size": size},
        )
    return start, end
