"""The client's exceptions, and the one place that maps registry HTTP errors onto them.

Every exception carries ``exit_code``; ``registry-client`` exits with it:

====  ==========================  =========================================================
code  exception                   meaning
====  ==========================  =========================================================
0     (none)                      success
1     RegistryClientError         any other failure (a refused request, a conflict, …)
2     ConfigError                 bad flags, settings or local files (click usage errors too)
3     AuthenticationError         not logged in, or the token is invalid or expired
4     AccessDenied                logged in (or anonymous) but access is missing; the message
                                  says what is missing and where to fix it
5     NotFound                    no such model, revision or file
6     VersionWithdrawn            the registry withdrew this version
7     IntegrityError              a file's sha256, a manifest signature, a publisher
                                  signature, the manifest order (rollback) or the
                                  registry's audit log (audit-witness) did not check out
8     KeyChanged                  the registry's signing key differs from the pinned one;
                                  accept it explicitly with ``trust-key`` / ``--accept-new-key``
9     ValidationError             ``push``: the folder has problems (all are listed)
10    ServerUnavailable           the registry cannot be reached or answered 5xx
11    LocalFileError              a local file could not be written or read: disk full,
                                  quota exceeded, permission denied, read-only file system
                                  (one line naming the file and what to do)
====  ==========================  =========================================================
"""

from __future__ import annotations

import dataclasses
import errno
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin


@dataclasses.dataclass(frozen=True)
class Missing:
    """One unmet access requirement, as the registry explained it."""

    requirement: str
    message: str
    fix_url: str = ""

    def __str__(self) -> str:
        return f"{self.message} (fix at {self.fix_url})" if self.fix_url else self.message


class RegistryClientError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = dict(details or {})

    def lines(self) -> list[str]:
        """What the CLI prints: the message, then any detail worth a line of its own."""
        return [self.message]


class ConfigError(RegistryClientError):
    exit_code = 2


class AuthenticationError(RegistryClientError):
    exit_code = 3


class AccessDenied(RegistryClientError):
    """The registry said no; ``missing`` lists what the user still needs, with fix URLs."""

    exit_code = 4

    def __init__(self, message: str, *, missing: Sequence[Missing] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.missing = tuple(missing)

    def lines(self) -> list[str]:
        if not self.missing:
            return [self.message]
        return ["Access denied. What is missing:"] + [f"  - {m}" for m in self.missing]


class NotFound(RegistryClientError):
    exit_code = 5


class VersionWithdrawn(RegistryClientError):
    exit_code = 6


class IntegrityError(RegistryClientError):
    """Something did not verify; nothing was placed in the cache as valid."""

    exit_code = 7


class HashMismatch(IntegrityError):
    pass


class SignatureInvalid(IntegrityError):
    pass


class RollbackRefused(IntegrityError):
    pass


class KeyChanged(IntegrityError):
    exit_code = 8


class ValidationError(RegistryClientError):
    """A folder failed validation; ``problems`` lists every one as (path, reason)."""

    exit_code = 9

    def __init__(
        self, message: str, *, problems: Sequence[tuple[str, str]] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.problems = tuple(problems)

    def lines(self) -> list[str]:
        listed = [f"  - {path or '(version)'}: {reason}" for path, reason in self.problems]
        return [self.message, *listed]


class ServerUnavailable(RegistryClientError):
    exit_code = 10


class LocalFileError(RegistryClientError):
    """An operating-system error on a local file (``error_from_os_error``)."""

    exit_code = 11


_OS_HINTS: dict[int, str] = {
    errno.ENOSPC: "the disk is full; free some space, or set REGISTRY_CACHE_DIR to a larger disk",
    errno.EDQUOT: "the disk quota is exceeded; free some space, or set REGISTRY_CACHE_DIR",
    errno.EACCES: "permission denied; check the folder's owner and mode, or set "
    "REGISTRY_CACHE_DIR / REGISTRY_CONFIG_DIR to a folder you can write",
    errno.EPERM: "operation not permitted; check the folder's owner and mode",
    errno.EROFS: "the file system is read-only; set REGISTRY_CACHE_DIR to a writable folder",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and retry",
}


def error_from_os_error(error: OSError) -> RegistryClientError:
    """One line for an OS error that reached the CLI (network errors: ServerUnavailable)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return ServerUnavailable(f"The registry cannot be reached: {error.strerror or error}")
    hint = _OS_HINTS.get(error.errno or 0) or (error.strerror or str(error)).lower()
    where = f" {error.filename}" if error.filename else ""
    return LocalFileError(f"Local file error{where}: {hint}.", details={"errno": error.errno})


_BY_CODE: dict[str, type[RegistryClientError]] = {
    "RepoNotFound": NotFound,
    "RevisionNotFound": NotFound,
    "EntryNotFound": NotFound,
    "NotFound": NotFound,
    "GatedRepo": AccessDenied,
    "Forbidden": AccessDenied,
    "Unauthorized": AuthenticationError,
    "VersionWithdrawn": VersionWithdrawn,
    "ValidationFailed": ValidationError,
    "ServiceUnavailable": ServerUnavailable,
}

_BY_STATUS: dict[int, type[RegistryClientError]] = {
    401: AuthenticationError,
    403: AccessDenied,
    404: NotFound,
    410: VersionWithdrawn,
    422: ValidationError,
}


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, url: str, base_url: str = ""
) -> RegistryClientError:
    """Turn a registry error response (``X-Error-Code``, JSON body) into an exception."""
    payload = _json_object(body)
    # The body's code is the registry's own; the header may be a stock-client compatible one
    # (a withdrawn version's files say RevisionNotFound there, with status 410).
    code = str(payload.get("code") or "") or headers.get("X-Error-Code") or None
    if status == 410:
        code = "VersionWithdrawn"
    message = (
        str(payload.get("error") or "")
        or headers.get("X-Error-Message")
        or f"HTTP {status} from {url}"
    )
    if code is not None and code in _BY_CODE:
        cls = _BY_CODE[code]
    elif status >= 500:
        cls = ServerUnavailable
    else:
        cls = _BY_STATUS.get(status, RegistryClientError)
    kwargs: dict[str, Any] = {"status": status, "code": code, "details": payload}
    if cls is AccessDenied:
        kwargs["missing"] = _missing(payload, base_url)
    elif cls is ValidationError:
        kwargs["problems"] = _problems(payload)
    elif cls is AuthenticationError and payload.get("missing"):
        # Anonymous and refused: the registry still says what is missing (log in first, …).
        cls, kwargs["missing"] = AccessDenied, _missing(payload, base_url)
    if status == 429 and headers.get("Retry-After"):
        message = f"{message} (retry after {headers.get('Retry-After')} s)"
    if cls is ServerUnavailable and status >= 500 and code is None:
        message = f"The registry answered HTTP {status} for {url}: {message}"
    return cls(message, **kwargs)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _missing(payload: Mapping[str, Any], base_url: str) -> list[Missing]:
    items = payload.get("missing")
    result = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        fix = str(item.get("fix_url") or "")
        if fix and base_url:
            fix = urljoin(base_url.rstrip("/") + "/", fix)
        result.append(Missing(str(item.get("requirement", "")), str(item.get("message", "")), fix))
    return result


def _problems(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    items = payload.get("problems")
    return [  # the registry's {field, problem}; servers before issue 15 said {path, reason}
        (str(p.get("field", p.get("path", ""))), str(p.get("problem", p.get("reason", ""))))
        for p in (items if isinstance(items, list) else [])
        if isinstance(p, dict)
    ]
