"""An upload's request body read straight from the socket into the store's own buffer.

Under gunicorn a body read through ``wsgi.input`` is copied four times on its way (the
unreader's and the body's ``BytesIO`` buffers, slices, werkzeug's stream) before the store
sees it. For a body of known length, ``DirectBody`` first hands out what gunicorn has
already read ahead, then ``recv_into`` the caller's buffer: the bytes are hashed and written
from where the kernel put them. Anything else (another server, chunked transfer encoding)
keeps werkzeug's ``request.stream``.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from flask import Request


def upload_body(request: Request) -> BinaryIO:
    """The fastest reader of this request's body that keeps its exact length."""
    direct = DirectBody.wrap(request.environ)
    return direct if direct is not None else request.stream  # type: ignore[return-value]


class DirectBody(io.RawIOBase):
    """gunicorn's body of known length, read with ``recv_into``; gunicorn's own counter of
    the bytes left is kept current, so the connection is reused (or closed) as before."""

    def __init__(self, body: Any, sock: Any) -> None:
        super().__init__()
        reader = body.reader
        held = body.buf.getvalue()  # taken from the reader already
        body.buf = io.BytesIO()
        ahead = reader.unreader.take_buffered()
        mine, rest = ahead[: reader.length], ahead[reader.length :]
        if rest:  # a pipelined next request: give it back
            reader.unreader.unread(rest)
        reader.length -= len(mine)
        self._body = body
        self._reader = reader
        self._sock = sock
        self._pending = memoryview(held + mine)

    @classmethod
    def wrap(cls, environ: dict[str, Any]) -> DirectBody | None:
        sock = environ.get("gunicorn.socket")
        body = environ.get("wsgi.input")
        try:
            from gunicorn.http.body import Body, LengthReader
            from gunicorn.http.unreader import SocketUnreader
        except ImportError:
            return None
        if sock is None or not isinstance(body, Body) or not isinstance(body.reader, LengthReader):
            return None
        unreader = body.reader.unreader
        if not isinstance(unreader, SocketUnreader) or not hasattr(unreader, "take_buffered"):
            return None
        return cls(body, sock)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if len(self._pending):
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        want = min(len(view), self._reader.length)
        if want <= 0:
            return 0
        try:
            n = self._sock.recv_into(view[:want])
        except BaseException:
            self._body.failed = True  # where the next request starts is unknown now
            raise
        if not n:
            self._body.failed = True
        self._reader.length -= n
        return n
