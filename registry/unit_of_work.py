"""One transaction per request and per command, as warehouse's pyramid_tm does it.

Services only ``flush()``; whoever opened the session commits once at the end. A request
that answers below 400 commits (``finish_view``, run by the authorization seam right after
the view, so a view that forgot to authorize commits nothing); an error answer or an
exception rolls everything back (``finish_error``, run by the error handler), so a refusal
never leaves half its work behind. Two ways out of that rule are named here:

- ``RegistryError(keep_changes=True)``: the refusal *is* the outcome to keep (a failed
  login or a refused download audited, a failed validation report stored);
- ``registry.db.commit_early(db, reason)``: the few deliberate commits in the middle of a request
  (a chunk's staged bytes confirmed, a token's last-used stamp), each with its reason.

The session carries where the request came from (``db.info["request_info"]``), so the
audit log finds it without every service passing it along.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from registry.audit.events import INFO_KEY
from registry.context import request_info
from registry.errors import RegistryError

log = logging.getLogger(__name__)


def finish_view(response: Response) -> Response:
    """End the request's unit of work after its view: commit below 400, else roll back."""
    db: Session | None = g.get("db")
    if db is not None:
        if response.status_code < 400:
            db.commit()
        else:
            db.rollback()
    return response


def finish_error(error: BaseException) -> None:
    """End the unit of work of a request that raised: keep only what the error says to."""
    db: Session | None = g.get("db")
    if db is None:
        return
    if isinstance(error, RegistryError) and error.keep_changes:
        try:
            db.commit()
            return
        except SQLAlchemyError:
            log.exception("could not keep the changes of a refused request")
    db.rollback()


@contextmanager
def unit_of_work(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for one command: committed on success, rolled back on any error."""
    db = sessions()
    try:
        yield db
        db.commit()
    except RegistryError as error:
        if error.keep_changes:
            db.commit()
        else:
            db.rollback()
        raise
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


def install_unit_of_work(app: Flask, sessions: sessionmaker[Session]) -> None:
    """Give every request ``g.db``; the seam commits it after the view (``finish_view``)."""

    @app.before_request
    def _begin() -> None:
        g.db = sessions()
        g.db.info[INFO_KEY] = request_info()

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()  # rolls back whatever was not committed
