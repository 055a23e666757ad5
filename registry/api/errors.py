"""One error handler: every error becomes JSON with ``X-Error-Code``/``X-Error-Message``."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from registry.api.headers import header_safe
from registry.errors import BadRequest, InsufficientStorage, RegistryError, ServiceUnavailable
from registry.storage import BlobNotFoundError, StorageFullError, StorageUnavailableError
from registry.unit_of_work import finish_error
from registry.web.errors import render_error_page

STORE_DOWN = (
    "The registry cannot check its rate limits right now (its Redis store is unavailable); "
    "try again shortly."
)

HTML_BLUEPRINTS = frozenset({"web"})


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None):
    body: dict[str, Any] = {"error": message, "code": code}
    if details:
        body.update(details)
    response = jsonify(body)
    response.status_code = status
    response.headers["X-Error-Code"] = code
    response.headers["X-Error-Message"] = header_safe(message)
    return response


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(RegistryError)
    def _registry_error(error: RegistryError) -> Response:
        finish_error(error)
        response = render_error(error.status, error.code, error.message, error.details)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        finish_error(error)
        code = (error.name or "Error").replace(" ", "")
        message = error.description or error.name
        if error.code == 404:
            what = "page" if request.blueprint is None and _wants_html() else "route"
            message = f"No such {what}: {request.path}"
        if error.code == 405:
            message = f"Method {request.method} is not allowed on {request.path}"
        if error.code == 413:
            limit = request.max_content_length
            message = f"The request body is larger than {request.path} accepts" + (
                f" ({limit} bytes at most)." if limit is not None else "."
            )
        return render_error(error.code or 500, code, message)

    # Backend faults: logged with their detail (hosts, paths), answered without it.
    faults: list[tuple[type[Exception], str, RegistryError]] = [
        (
            # A value the database cannot store or compare (a string with NUL, a number out
            # of the column's range) that no check caught before the query: still the
            # caller's input, so a 400, and logged so that the missing check gets added.
            DataError,
            "database refused a value",
            BadRequest(
                "The database refused a value of this request (a control character in a "
                "string, or a number out of range); correct the input and retry."
            ),
        ),
        (
            OverflowError,  # sqlite3's DataError: an integer beyond 64 bits
            "database refused a number",
            BadRequest(
                "A number in this request is out of range for the registry's database; "
                "correct the input and retry."
            ),
        ),
        (
            RedisError,
            "rate-limit store unavailable",
            ServiceUnavailable(STORE_DOWN),
        ),
        (
            OperationalError,
            "database unavailable",
            ServiceUnavailable("The registry database is unavailable; try again shortly."),
        ),
        (
            BlobNotFoundError,
            "blob missing from storage",
            ServiceUnavailable(
                "This file's content is missing from the registry's storage; the operators "
                "have to restore it (registry-server fsck lists missing blobs)."
            ),
        ),
        (
            StorageFullError,
            "blob storage full",
            InsufficientStorage(
                "The registry's blob storage is full: nothing of this request was kept (an "
                "upload's received offset is unchanged). Retry once the operators have freed "
                "space."
            ),
        ),
        (
            StorageUnavailableError,
            "blob storage unavailable",
            ServiceUnavailable("The registry's blob storage is unavailable; try again shortly."),
        ),
    ]
    for exception, log_line, answer in faults:
        app.register_error_handler(exception, _fault_handler(app, log_line, answer))


def _fault_handler(app: Flask, log_line: str, answer: RegistryError) -> Any:
    def handle(error: Exception) -> Response:
        finish_error(error)
        app.logger.error("%s: %s", log_line, error)
        return render_error(answer.status, answer.code, answer.message)

    return handle


def render_error(status: int, code: str, message: str, details: dict[str, Any] | None = None):
    """JSON for the API and Hugging Face routes; the web UI renders its own page, and so does
    an unknown route asked for by a browser."""
    if request.blueprint in HTML_BLUEPRINTS or (request.blueprint is None and _wants_html()):
        return render_error_page(status, code, message, details)
    response = error_response(status, code, message, details)
    if status in (401,) and request.blueprint != "hf":
        response.headers["WWW-Authenticate"] = 'Bearer realm="registry"'
    return response


def _wants_html() -> bool:
    """A browser asks for HTML first; curl (``*/*``) and API clients get JSON."""
    accepted = request.accept_mimetypes
    return accepted["text/html"] > accepted["application/json"]
