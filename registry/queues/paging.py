"""One page of a queue: which rows, in which order, and how many there are in all."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from registry.errors import BadRequest

T = TypeVar("T")
SORTS = ("oldest", "newest")
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_SEARCH = 200


@dataclasses.dataclass(frozen=True)
class QueueQuery:
    """What a reviewer asked to see: a status, a search, an order and a page."""

    status: str = "pending"
    search: str = ""
    sort: str = "oldest"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_args(
        cls, args: Mapping[str, Any], *, statuses: Sequence[str], default_status: str = "pending"
    ) -> QueueQuery:
        """Read ``status``, ``q``, ``sort``, ``page`` and ``per_page``; say what to fix."""
        status = str(args.get("status") or default_status)
        if status not in (*statuses, "all"):
            raise BadRequest(f"status must be one of {', '.join((*statuses, 'all'))}.")
        sort = str(args.get("sort") or "oldest")
        if sort not in SORTS:
            raise BadRequest("sort must be oldest or newest.")
        return cls(
            status=status,
            search=str(args.get("q") or "").strip()[:MAX_SEARCH],
            sort=sort,
            page=_positive(args.get("page"), "page", 1, 1_000_000),
            per_page=_positive(args.get("per_page"), "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
        )

    @property
    def status_filter(self) -> str | None:
        return None if self.status == "all" else self.status


def _positive(raw: Any, name: str, default: int, top: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number from 1 to {top}.") from None
    if not 1 <= value <= top:
        raise BadRequest(f"{name} must be a whole number from 1 to {top}.")
    return value


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """The rows of one page and where that page sits in the whole queue."""

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1 if self.items else 0


def paginate(db: Session, statement: Select[Any], query: QueueQuery) -> Page[Any]:
    """Count ``statement``'s rows and fetch the asked-for page (the last one if past it)."""
    total = db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    pages = max(1, math.ceil(total / query.per_page))
    page = min(query.page, pages)
    offset = (page - 1) * query.per_page
    items = list(db.scalars(statement.limit(query.per_page).offset(offset)).unique())
    return Page(items, total, page, query.per_page)
