"""Talking to the registry over urllib3: JSON calls, and file bodies into buffers.

File bodies go through ``readinto`` into one large reusable buffer, so a download hashes
and writes every byte in a pipeline (``client.receive``) at close to curl's speed.
Proxies come from ``HTTP(S)_PROXY``/``ALL_PROXY`` (credentials in the URL become a
``Proxy-Authorization`` header; HTTPS goes through CONNECT) and ``NO_PROXY`` (host names,
``.domain`` suffixes, ``host:port``, IP addresses and CIDR ranges, ``*``); CA bundles come
from ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``, else certifi.

One retry policy (``RETRY``) serves pull, push and the JSON calls: idempotent requests are
retried on 429/502/503/504 and on connection failures, waiting what ``Retry-After`` asks
or a jittered exponential backoff, a bounded number of times.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import ipaddress
import json as jsonlib
import os
import random
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from email.message import Message
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

from client.errors import RegistryClientError, ServerUnavailable, error_from_response

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 1 << 20
POOL_SIZE = 16


def software_version() -> str:
    """The installed client version (``roentgen-registry`` distribution)."""
    try:
        return version("roentgen-registry")
    except PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"registry-client/{software_version()}"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a request again."""

    attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    methods: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
    sleep: Callable[[float], None] = time.sleep

    def retries_status(self, method: str, status: int) -> bool:
        return method.upper() in self.methods and status in self.statuses

    def retries_failure(self, method: str, error: BaseException) -> bool:
        """Connection failures: any idempotent request; others only if nothing was sent."""
        return method.upper() in self.methods or isinstance(error, NewConnectionError)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds before attempt ``attempt + 1``: ``Retry-After`` if given, else full jitter."""
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(self.max_seconds, asked)
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def wait(self, attempt: int, retry_after: str | None = None) -> None:
        self.sleep(self.delay(attempt, retry_after))


RETRY = RetryPolicy()


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number of seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _message(headers: Any) -> Message:
    """urllib3's headers as an ``email.message.Message`` (case-insensitive, repeated keys)."""
    message = Message()
    for key, value in headers.items():
        message[key] = value
    return message


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

    def __init__(
        self, url: str, token: str | None, *, timeout: float = 60.0, retry: RetryPolicy = RETRY
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry = retry
        self.cookies: dict[str, str] = {}
        self._transport = Transport(timeout)

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
        """One exchange, sent again as ``self.retry`` allows."""
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                answer = self._transport.send(method, url, headers, body, preload=True)
            except (Urllib3Error, OSError) as error:
                if last or not self.retry.retries_failure(method, error):
                    raise ServerUnavailable(f"Cannot reach {self.url}: {_reason(error)}") from None
                self.retry.wait(attempt)
                continue
            if not last and self.retry.retries_status(method, answer.status):
                self.retry.wait(attempt, answer.headers.get("Retry-After"))
                continue
            return Response(answer.status, _message(answer.headers), answer.data, url)
        raise AssertionError("unreachable")

    def open_body(self, path: str, *, start: int = 0) -> BodyStream:
        """Start a streaming GET (from byte ``start``), following redirects like the HF client."""
        url = self.absolute(path)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **self.auth_headers()}
        if start:
            headers["Range"] = f"bytes={start}-"
        origin = urlsplit(url).netloc
        first_headers: Message | None = None
        redirects = attempt = 0
        while redirects <= MAX_REDIRECTS:
            attempt += 1
            try:
                response = self._transport.send("GET", url, headers, None, preload=False)
            except (Urllib3Error, OSError) as error:
                if attempt >= self.retry.attempts:
                    raise ServerUnavailable(
                        f"Cannot reach {urlsplit(url).netloc}: {_reason(error)}"
                    ) from None
                self.retry.wait(attempt)
                continue
            if response.status in REDIRECTS and response.headers.get("Location"):
                if first_headers is None:
                    first_headers = _message(response.headers)
                location = urljoin(url, response.headers["Location"])
                response.drain_conn()
                response.release_conn()
                if urlsplit(location).netloc != origin:
                    # Presigned object-store URLs must not see the registry token.
                    headers.pop("Authorization", None)
                url, redirects = location, redirects + 1
                continue
            if response.status >= 400:
                body = response.read(ERROR_BODY_LIMIT)
                response.close()
                if attempt < self.retry.attempts and self.retry.retries_status(
                    "GET", response.status
                ):
                    self.retry.wait(attempt, response.headers.get("Retry-After"))
                    continue
                raise error_from_response(
                    response.status, _message(response.headers), body, url=url,
                    base_url=self.url,
                )  # fmt: skip
            return BodyStream(response, first_headers or _message(response.headers))
        raise ServerUnavailable(f"Too many redirects for {path}")


def _reason(error: BaseException) -> str:
    inner = getattr(error, "reason", None)
    return str(inner or error) or type(error).__name__


class BodyStream:
    """A body read into caller-provided buffers; ``headers`` are the registry's own answer's."""

    def __init__(self, response: urllib3.BaseHTTPResponse, registry_headers: Message) -> None:
        self.response = response
        self.status = response.status
        self.headers = registry_headers
        self.content_range = response.headers.get("Content-Range")
        # urllib3's own readinto copies through read(); the http.client response under it
        # fills the caller's buffer straight from the socket (the speed of this path).
        # Only for plain bodies: urllib3 has read nothing of it yet and decodes nothing.
        raw = getattr(response, "_fp", None)
        plain = not response.headers.get("Content-Encoding") and hasattr(raw, "readinto")
        self._raw = raw if plain else None

    def readinto(self, buffer: memoryview) -> int:
        try:
            if self._raw is not None:
                return self._raw.readinto(buffer)
            return self.response.readinto(buffer)
        except (Urllib3Error, OSError, http.client.HTTPException) as error:
            raise ConnectionInterrupted(str(error) or type(error).__name__) from None

    def close(self) -> None:
        # A body not read to the end cannot go back to the pool: close its connection.
        finished = (
            self._raw.isclosed() if self._raw is not None else not self.response.length_remaining
        )
        if not finished:
            self.response.close()
        self.response.release_conn()

    def __enter__(self) -> BodyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConnectionInterrupted(ServerUnavailable):
    """The connection dropped mid-body; the download resumes from what it has."""


class Transport:
    """urllib3 pools, one per proxy (or none), shared by the threads of one client."""

    def __init__(self, timeout: float) -> None:
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pools: dict[str | None, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, *, preload: bool
    ) -> urllib3.BaseHTTPResponse:
        return self.pool(proxy_for(url)).urlopen(
            method,
            url,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=preload,
            decode_content=False,
            timeout=self.timeout,
        )

    def pool(self, proxy: str | None) -> urllib3.PoolManager:
        with self._lock:
            if proxy not in self._pools:
                self._pools[proxy] = _pool(proxy)
            return self._pools[proxy]


def _pool(proxy: str | None) -> urllib3.PoolManager:
    context = tls_context()
    if proxy is None:
        return urllib3.PoolManager(maxsize=POOL_SIZE, ssl_context=context)
    parts = urlsplit(proxy)
    headers = {}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers = urllib3.make_headers(proxy_basic_auth=credentials)
    bare = urlunsplit((parts.scheme, parts.hostname or "", "", "", ""))
    if parts.port:
        bare = f"{bare}:{parts.port}"
    return urllib3.ProxyManager(
        bare,
        proxy_headers=headers,
        maxsize=POOL_SIZE,
        ssl_context=context,
        proxy_ssl_context=context if parts.scheme == "https" else None,
    )


def proxy_for(url: str) -> str | None:
    """The proxy URL for ``url`` from the environment, or None (none set, or NO_PROXY)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or bypasses_proxy(parts.hostname or "", parts.port):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def bypasses_proxy(host: str, port: int | None = None) -> bool:
    """``NO_PROXY``: ``*``, host names and ``.suffix`` domains, ``host:port``, IPs, CIDRs."""
    raw = os.environ.get("NO_PROXY", os.environ.get("no_proxy", ""))
    host = host.lower().strip("[]")
    address = _ip(host)
    for entry in (e.strip().lower() for e in raw.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, wanted_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if wanted_port and port is not None and str(port) != wanted_port:
            continue
        name = name.strip("[]")
        if address is not None and "/" in name:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = name.lstrip("*").lstrip(".")
        if host == name or host.endswith(f".{name}"):
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and (entry.count(":") == 1 or head.endswith("]"))


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def tls_context() -> ssl.SSLContext:
    """The CA bundle named by ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``, else certifi's."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if not bundle:
        try:
            import certifi

            bundle = certifi.where()
        except ImportError:
            bundle = None
    return ssl.create_default_context(cafile=bundle)


# The names callers used before the move to urllib3.
_proxy_for = proxy_for
_tls_context = tls_context
