"""Talking to the registry over ``http.client``: JSON calls, and file bodies into buffers.

No ``requests``/``urllib3`` on purpose. File bodies go through ``HTTPResponse.readinto``,
which fills one large reusable buffer straight from the socket - what lets a download hash
and write every byte at curl speed - and skipping those imports takes ~0.1 s off every
command's start. Proxies from ``HTTP(S)_PROXY``/``NO_PROXY`` are honoured (CONNECT for
HTTPS); CA bundles from ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``, else certifi.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import ssl
import threading
import urllib.request
from collections.abc import Mapping
from email.message import Message
from http.cookies import SimpleCookie
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from client.errors import RegistryClientError, ServerUnavailable, error_from_response

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 1 << 20


def software_version() -> str:
    """The installed client version (``roentgen-registry`` distribution)."""
    try:
        return version("roentgen-registry")
    except PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"registry-client/{software_version()}"


class Response:
    """A fully read answer: status, case-insensitive headers, body."""

    def __init__(self, status: int, headers: Message, content: bytes, url: str) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class RegistryHTTP:
    """One registry: base URL, bearer token, cookies (password login) and error mapping."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self._local = threading.local()

    def absolute(self, path: str) -> str:
        return path if "://" in path else f"{self.url}/{path.lstrip('/')}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        auth: bool = True,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send a request; any status >= 400 not listed in ``ok`` raises a client error."""
        url = self.absolute(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        if auth:
            sent.update(self.auth_headers())
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = data
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            sent["Content-Length"] = str(len(body or b""))
        response = self._send(method, url, sent, body)
        for cookie in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(cookie).items():
                self.cookies[name] = morsel.value
        if response.status_code >= 400 and response.status_code not in ok:
            raise error_from_response(
                response.status_code, response.headers, response.content, url=url,
                base_url=self.url,
            )  # fmt: skip
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET a JSON document."""
        return self.call_json("GET", path, **kwargs)

    def call_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and decode its JSON answer."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RegistryClientError(
                f"The registry sent invalid JSON for {method} {path}"
            ) from None

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | None):
        """One exchange on this thread's keep-alive connection (retried once if it was stale)."""
        for attempt in (1, 2):
            connection, reused = self._connection(url)
            try:
                connection.request(method, _target(url, connection), body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
            except (OSError, http.client.HTTPException) as error:
                self._drop(url)
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection
                raise ServerUnavailable(f"Cannot reach {self.url}: {error}") from None
            if answer.will_close:
                self._drop(url)
            return Response(answer.status, answer.headers, content, url)
        raise AssertionError("unreachable")

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._local.__dict__.setdefault("pool", {})
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key in pool:
            return pool[key], True
        pool[key] = connect(url, self.timeout)
        return pool[key], False

    def _drop(self, url: str) -> None:
        parts = urlsplit(url)
        connection = self._local.__dict__.get("pool", {}).pop((parts.scheme, parts.netloc), None)
        if connection is not None:
            connection.close()

    def open_body(self, path: str, *, start: int = 0) -> BodyStream:
        """Start a streaming GET (from byte ``start``), following redirects like the HF client."""
        url = self.absolute(path)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **self.auth_headers()}
        if start:
            headers["Range"] = f"bytes={start}-"
        origin = urlsplit(url).netloc
        first_headers: Message | None = None
        for _ in range(MAX_REDIRECTS + 1):
            connection = connect(url, self.timeout)
            try:
                connection.request("GET", _target(url, connection), headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                raise ServerUnavailable(f"Cannot reach {urlsplit(url).netloc}: {error}") from None
            if first_headers is None:
                first_headers = response.headers
            if response.status in REDIRECTS and response.getheader("Location"):
                location = urljoin(url, response.getheader("Location", ""))
                response.read()
                connection.close()
                if urlsplit(location).netloc != origin:
                    # Presigned object-store URLs must not see the registry token.
                    headers.pop("Authorization", None)
                url = location
                continue
            if response.status >= 400:
                body = response.read(ERROR_BODY_LIMIT)
                connection.close()
                raise error_from_response(
                    response.status, response.headers, body, url=url, base_url=self.url
                )
            return BodyStream(connection, response, first_headers)
        raise ServerUnavailable(f"Too many redirects for {path}")


class BodyStream:
    """A body read into caller-provided buffers; ``headers`` are the registry's own answer's."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        registry_headers: Message,
    ) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status
        self.headers = registry_headers
        self.content_range = response.getheader("Content-Range")

    def readinto(self, buffer: memoryview) -> int:
        try:
            return self.response.readinto(buffer)
        except (OSError, http.client.HTTPException) as error:
            raise ConnectionInterrupted(str(error) or type(error).__name__) from None

    def close(self) -> None:
        self.response.close()
        self.connection.close()

    def __enter__(self) -> BodyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConnectionInterrupted(ServerUnavailable):
    """The connection dropped mid-body; the download resumes from what it has."""


def connect(url: str, timeout: float) -> http.client.HTTPConnection:
    """A connection for ``url``: direct, or through the configured proxy."""
    parts = urlsplit(url)
    proxy = _proxy_for(url)
    if parts.scheme == "https":
        if proxy:
            connection = http.client.HTTPSConnection(
                urlsplit(proxy).netloc, timeout=timeout, context=_tls_context()
            )
            connection.set_tunnel(parts.hostname or "", parts.port)
            return connection
        return http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=_tls_context())
    connection = http.client.HTTPConnection(
        urlsplit(proxy).netloc if proxy else parts.netloc, timeout=timeout
    )
    connection.via_proxy = bool(proxy)  # type: ignore[attr-defined]
    return connection


def _target(url: str, connection: http.client.HTTPConnection) -> str:
    """The request target: absolute through a plain-HTTP proxy, else path and query."""
    if getattr(connection, "via_proxy", False):
        return url
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _proxy_for(url: str) -> str | None:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _tls_context() -> ssl.SSLContext:
    """The CA bundle named by ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``, else certifi's."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if not bundle:
        try:
            import certifi

            bundle = certifi.where()
        except ImportError:
            bundle = None
    return ssl.create_default_context(cafile=bundle)
