"""Talking to the registry: JSON calls through ``requests``, file bodies through ``http.client``.

File bodies skip ``requests``/``urllib3`` on purpose: ``HTTPResponse.readinto`` fills one
large reusable buffer straight from the socket, which is what lets a download hash and write
every byte at loopback speed (curl-class) without per-chunk allocations.
"""

from __future__ import annotations

import http.client
import os
import ssl
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

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


class RegistryHTTP:
    """One registry: base URL, bearer token and the error mapping for every call."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

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
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; any status >= 400 not listed in ``ok`` raises a client error."""
        url = self.absolute(path)
        headers = dict(kwargs.pop("headers", None) or {})
        if auth:
            headers.update(self.auth_headers())
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=kwargs.pop("timeout", self.timeout), **kwargs
            )
        except requests.RequestException as error:
            raise ServerUnavailable(f"Cannot reach the registry at {self.url}: {error}") from None
        if response.status_code >= 400 and response.status_code not in ok:
            raise error_from_response(
                response.status_code,
                response.headers,
                response.content,
                url=url,
                base_url=self.url,
            )
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

    def open_body(self, path: str, *, start: int = 0) -> BodyStream:
        """Start a streaming GET (from byte ``start``), following redirects like the HF client."""
        url = self.absolute(path)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **self.auth_headers()}
        if start:
            headers["Range"] = f"bytes={start}-"
        origin = urlsplit(url).netloc
        first_headers: Mapping[str, str] | None = None
        for _ in range(MAX_REDIRECTS + 1):
            connection, response = _get(url, headers, self.timeout)
            if first_headers is None:
                first_headers = {k.title(): v for k, v in response.getheaders()}
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
                    response.status,
                    {k.title(): v for k, v in response.getheaders()},
                    body,
                    url=url,
                    base_url=self.url,
                )
            return BodyStream(connection, response, first_headers)
        raise ServerUnavailable(f"Too many redirects for {path}")


class BodyStream:
    """A body read into caller-provided buffers; ``headers`` are the registry's own answer's."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        registry_headers: Mapping[str, str],
    ) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status
        self.headers = registry_headers
        self.content_range = response.getheader("Content-Range")
        self.length = response.length

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


def _tls_context() -> ssl.SSLContext:
    """Trust the same CA bundle as ``requests`` (``REQUESTS_CA_BUNDLE`` or certifi)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return ssl.create_default_context(cafile=bundle or requests.utils.DEFAULT_CA_BUNDLE_PATH)


def _get(
    url: str, headers: Mapping[str, str], timeout: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.netloc, timeout=timeout, context=_tls_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    request_headers = dict(headers)
    request_headers["Host"] = parts.netloc
    try:
        connection.request("GET", target, headers=request_headers)
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise ServerUnavailable(f"Cannot reach {parts.scheme}://{parts.netloc}: {error}") from None
    return connection, response
