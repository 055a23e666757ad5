"""The client's transport: a proxy with credentials (CONNECT on loopback), NO_PROXY, the one
retry policy, and the partial-file lock."""

from __future__ import annotations

import base64
import http.server
import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from client.http import RETRY, RegistryHTTP, RetryPolicy, bypasses_proxy, parse_retry_after
from tests.fixtures.repos import publish_folder
from tests.fixtures.tls import TlsServer

USER, PASSWORD = "alice", "s3cret@ward"  # an '@' in a password must survive quoting


class ConnectProxy(socketserver.ThreadingTCPServer):
    """A tiny CONNECT proxy that insists on Basic credentials; counts the tunnels it opened."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels: list[str] = []
        self.refused = 0
        self.expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Tunnel(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ConnectProxy = self.server  # type: ignore[assignment]
        request_line = self.rfile.readline(65536).decode("latin-1").split()
        headers = {}
        for _ in range(100):
            line = self.rfile.readline(65536).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if len(request_line) < 2 or request_line[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if headers.get("proxy-authorization") != server.expected:
            server.refused += 1
            self.wfile.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="ward"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        host, _, port = request_line[1].rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=30)
        server.tunnels.append(request_line[1])
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        _pipe(self.connection, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([a, b], [], [], 5)
            for sock in ready:
                data = sock.recv(1 << 16)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    finally:
        b.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def tls_registry(app, tmp_path, monkeypatch) -> Iterator[TlsServer]:
    server = TlsServer(app, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    yield server
    server.stop()


def _client(url: str, token: str | None = None):
    from client import RegistryClient

    return RegistryClient(url=url, token=token, notify=lambda *_: None)


def test_a_proxy_with_credentials_carries_a_pull(
    registry, tls_registry, proxy, client_dirs, tiny_model_dir, monkeypatch
):
    publish_folder(registry, "demo/proxied", tiny_model_dir)
    password = PASSWORD.replace("@", "%40")
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:{password}@127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result = _client(tls_registry.url).pull("demo/proxied", quiet=True)
    assert (result.path / "model_index.json").read_bytes() == (
        tiny_model_dir / "model_index.json"
    ).read_bytes()
    assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{tls_registry.port}"}
    assert proxy.refused == 0

    tunnels = len(proxy.tunnels)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    assert _client(tls_registry.url).http.get_json("/api/v1/ping") is not None
    assert len(proxy.tunnels) == tunnels  # NO_PROXY: straight to the registry


def test_wrong_proxy_credentials_are_a_clear_error(tls_registry, proxy, monkeypatch):
    from client.errors import RegistryClientError

    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:wrong@127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    quick = RetryPolicy(attempts=2, sleep=lambda _s: None)
    http = RegistryHTTP(tls_registry.url, None, retry=quick)
    with pytest.raises(RegistryClientError) as failed:
        http.get_json("/api/v1/ping")
    assert "407" in str(failed.value) or "Proxy" in str(failed.value)
    assert proxy.refused >= 1


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("", "registry.example.org", None, False),
        ("*", "registry.example.org", None, True),
        ("example.org", "registry.example.org", None, True),
        (".example.org", "registry.example.org", None, True),
        ("example.org", "badexample.org", None, False),
        ("10.0.0.0/8, localhost", "10.2.3.4", None, True),
        ("10.0.0.0/8", "11.2.3.4", None, False),
        ("registry.local:8443", "registry.local", 8443, True),
        ("registry.local:8443", "registry.local", 443, False),
        ("::1", "::1", None, True),
    ],
)
def test_no_proxy_rules(monkeypatch, no_proxy, host, port, bypass):
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert bypasses_proxy(host, port) is bypass


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 (then 429 with Retry-After) before 200; counts requests per method."""

    script: list[tuple[int, dict[str, str]]] = []
    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(self.command)
        status, headers = self.script.pop(0) if self.script else (200, {})
        body = b'{"ok": true}' if status == 200 else b'{"error": "busy", "code": "Busy"}'
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_one_retry_policy_for_idempotent_calls(flaky, monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    waits: list[float] = []
    policy = RetryPolicy(attempts=4, base_seconds=0.01, sleep=waits.append)
    http = RegistryHTTP(flaky, None, retry=policy)

    _Flaky.script = [(503, {}), (429, {"Retry-After": "2"}), (502, {})]
    assert http.get_json("/x") == {"ok": True}
    assert _Flaky.seen == ["GET"] * 4
    assert waits[1] == 2.0 and 0 < waits[0] <= 0.01 and 0 < waits[2] <= 0.04

    _Flaky.seen, waits[:] = [], []
    _Flaky.script = [(503, {})]
    with pytest.raises(Exception):  # noqa: B017 - the client's ServerUnavailable
        http.call_json("POST", "/commit", json={})
    assert _Flaky.seen == ["POST"]  # a commit is never sent twice

    _Flaky.seen = []
    _Flaky.script = [(503, {})] * 10
    with pytest.raises(Exception):  # noqa: B017
        http.request("PUT", "/chunk", data=b"x")
    assert _Flaky.seen == ["PUT"] * 4  # bounded


def test_retry_after_forms_and_bounds():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert RETRY.delay(1, "100000") == RETRY.max_seconds
    delays = [RETRY.delay(n) for n in range(1, 12)]
    assert all(0 < d <= RETRY.max_seconds for d in delays)
    assert len({round(RETRY.delay(3), 6) for _ in range(20)}) > 1  # jittered


def test_a_partial_file_waits_for_the_lock_another_process_holds(
    open_tiny, make_client, client_dirs, tiny_model_dir
):
    import hashlib

    weights = tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    partial = Path(client_dirs["cache"]) / "incomplete" / f"{sha}.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{partial}.lock")
    lock.acquire()
    done: list[object] = []
    worker = threading.Thread(
        target=lambda: done.append(make_client().pull(open_tiny.repo_id, quiet=True)),
        daemon=True,
    )
    worker.start()
    time.sleep(1.5)
    assert not done  # waiting on the lock, not appending to the same file
    lock.release()
    worker.join(timeout=60)
    assert done and (done[0].path / "unet" / weights.name).read_bytes() == weights.read_bytes()
