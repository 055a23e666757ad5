"""Request bodies: bounded before they are read, checked once, parsed into what a view expects.

``RegistryRequest`` is the app's request class. Its ``max_content_length`` is the route's
limit (``ROUTE_LIMITS``, else ``MAX_BODY_BYTES``), so werkzeug answers 413 from the
``Content-Length`` alone, before reading a byte, and stops a chunked body at the limit;
this holds for the CSRF check of a form too, which reads the form before any view runs.
Every JSON body and form it parses is checked in one place: no NUL in a string (no
database stores one; PostgreSQL cannot even compare it) and no control character in a
key, at most ``MAX_JSON_DEPTH`` levels of nesting. A NUL answers 422 in the ``problems``
shape, like any other bad field value; a bad key or nesting 400; each names the field.
Other control characters in values are left to the checks that know the field (a file
path's validator names the file; names and tags match their patterns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from flask import Request, request

from client.shared import rules
from registry.credentials.trainings import MAX_CERTIFICATE_BYTES
from registry.errors import BadRequest, ValidationFailed

B = TypeVar("B", bound=pydantic.BaseModel)

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_BYTES = MAX_BODY_BYTES
MAX_JSON_DEPTH = 64
MAX_CARD_BODY_BYTES = 24 * 1024 * 1024  # a model card of up to 5 Mi characters, JSON-escaped
CERTIFICATE_BODY_BYTES = MAX_CERTIFICATE_BYTES + 64 * 1024
# Routes whose bodies may be larger than MAX_BODY_BYTES; ``None``: the view bounds the stream.
ROUTE_LIMITS: dict[str, int | None] = {
    "v1.put_chunk": None,
    "hf.lfs_put": None,  # put_stream stops at the ticket's size
    "hf.lfs_put_part": None,  # stage_write reads exactly the part's length
    "v1.open_upload": MAX_CARD_BODY_BYTES,
    "web.card_fields": MAX_CARD_BODY_BYTES,
    "v1.submit_training": CERTIFICATE_BODY_BYTES,
    "web.submit_training": CERTIFICATE_BODY_BYTES,
}


class RegistryRequest(Request):
    """Flask's request with per-route body limits and one check of every parsed body."""

    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is not None:  # set by a view for this request
            return self._max_content_length
        endpoint = self.url_rule.endpoint if self.url_rule is not None else None
        return ROUTE_LIMITS.get(endpoint, MAX_BODY_BYTES) if endpoint else MAX_BODY_BYTES

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            data = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            raise BadRequest(
                f"The JSON body is nested too deeply; send at most {MAX_JSON_DEPTH} levels."
            ) from None
        check_json(data)
        return data

    def _load_form_data(self) -> None:
        super()._load_form_data()
        for name, value in self.form.items(multi=True):
            _check_key(name)
            _check_value(name, value)
        for name, upload in self.files.items(multi=True):
            _check_key(name)
            _check_value(name, upload.filename or "")


def check_json(data: Any) -> None:
    """400 naming the first string with a NUL, or nesting past the limit."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(
                f"The JSON body is nested too deeply at {where!r}; send at most "
                f"{MAX_JSON_DEPTH} levels."
            )
        if isinstance(value, str):
            _check_value(where or "body", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                _check_key(path)
                stack.append((item, path, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_key(field: str) -> None:
    found = rules.control_character(field)
    if found is not None:
        raise BadRequest(f"Field name {ascii(field)} contains the control character {found}.")


def _check_value(field: str, value: str) -> None:
    if "\x00" in value:
        problem = "contains a NUL character (U+0000); remove it"
        raise ValidationFailed(
            f"Field {ascii(field)} {problem}.",
            details={"problems": [{"field": field, "problem": problem}]},
        )


def json_object() -> dict[str, Any]:
    """The request's JSON object body (400 with a clear message otherwise)."""
    if not request.is_json:
        raise BadRequest("Send a JSON object with 'Content-Type: application/json'.")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def parse_body(model: type[B], data: Mapping[str, Any] | None = None) -> B:
    """The JSON object body (or ``data``, e.g. a multipart form's fields) as ``model``; every
    problem in one 422 (``problems_from``)."""
    try:
        return model.model_validate(json_object() if data is None else data)
    except pydantic.ValidationError as error:
        problems = problems_from(error)
        summary = "; ".join(f"{p['field']} {p['problem']}" for p in problems)
        raise ValidationFailed(
            f"The request body has problems: {summary}", details={"problems": problems}
        ) from None


_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "extra_forbidden": "is not a field of this request; remove it",
}


def problems_from(error: pydantic.ValidationError) -> list[dict[str, str]]:
    """pydantic's errors in the registry's ``{field, problem}`` shape, in plain words."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        kind = item["type"]
        if kind == "literal_error":
            expected = (item.get("ctx") or {}).get("expected", "")
            phrase = f"must be one of {expected}"
        else:
            phrase = _PHRASES.get(kind, item["msg"][:1].lower() + item["msg"][1:])
        problems.append({"field": field, "problem": phrase})
    return problems
