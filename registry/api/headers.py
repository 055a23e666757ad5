"""Response header values, made safe in one place.

An HTTP header carries one line of latin-1 and no control characters; gunicorn refuses a
response that breaks this and the client sees a dropped connection instead of the answer.
``sanitise_headers`` (an ``after_request`` hook on every response) rewrites any value that
would: control characters become spaces, anything outside ASCII a '?'. File names go in
``Content-Disposition`` through ``content_disposition`` (RFC 6266 with the exact name in
RFC 5987 form), which never needs that rewrite.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Response

MAX_HEADER_CHARS = 2000


def header_safe(value: str) -> str:
    """``value`` as one line of printable ASCII (at most ``MAX_HEADER_CHARS`` characters)."""
    flat = "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in value)
    flat = " ".join(flat.split())
    return flat.encode("ascii", "replace").decode("ascii")[:MAX_HEADER_CHARS]


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``disposition`` with an ASCII fallback ``filename`` and the exact one as ``filename*``."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or "download"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in name)
    if fallback == name:
        return f'{disposition}; filename="{name}"'
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def sanitise_headers(response: Response) -> Response:
    """Rewrite every header value that is not one line of printable ASCII."""
    unsafe = [
        (key, value)
        for key, value in response.headers.items()
        if not (value.isascii() and value.isprintable())
    ]
    for key, value in unsafe:
        response.headers[key] = header_safe(value)
    return response


def install_header_checks(app: Flask) -> None:
    app.after_request(sanitise_headers)
