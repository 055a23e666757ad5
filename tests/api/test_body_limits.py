"""Bodies are bounded before they are read: 200 MiB to a JSON or form route is answered 413
by a real server process whose memory barely moves (issue 15)."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

BODY = 200 * 1024 * 1024
CHUNK = 1024 * 1024


def _post_huge(port: int, path: str, content_type: str, token: str) -> tuple[int, int]:
    """POST a ``BODY``-byte body, stopping as soon as the server answers; (status, bytes sent)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {BODY}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    prefix = b'{"text": "' if "json" in content_type else b"--b\r\nContent-Disposition: "
    chunk = b"a" * CHUNK
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + prefix)
        deadline = time.monotonic() + 60
        while sent < BODY and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        sock.settimeout(30)
        answer = b""
        try:
            while b"\r\n" not in answer and (data := sock.recv(65536)):
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1."), (path, sent, answer[:200])
    return int(answer.split()[1]), sent


ROUTES = [
    ("/api/v1/uploads", "application/json"),
    ("/api/v1/login", "application/json"),
    ("/publish/card-fields", "application/json"),
    ("/login", "multipart/form-data; boundary=b"),
    ("/register", "application/x-www-form-urlencoded"),
]


class PeakRss:
    """Samples a server's RSS every 20 ms in a thread: the peak, not just the end state."""

    def __init__(self, server) -> None:
        self.server, self.before, self.peak = server, server.rss(), 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(0.02):
            self.peak = max(self.peak, self.server.rss())

    def growth(self) -> int:
        self.stopped.set()
        self.thread.join(timeout=5)
        return max(self.peak, self.server.rss()) - self.before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_200_mib_body_is_refused_413_before_it_is_read(start_server, people):
    token = people.token(people.user("big-bodies@example.org", admin=True), "admin")
    server = start_server()
    rss = PeakRss(server)
    for path, content_type in ROUTES:
        status, sent = _post_huge(server.port, path, content_type, token)
        assert status == 413, (path, status)
        assert sent < 100 * CHUNK, (path, sent)
    growth = rss.growth()
    print(f"server RSS {rss.before / 2**20:.1f} MiB before, peak growth {growth / 2**20:.1f} MiB")
    assert growth < 20 * 1024 * 1024, f"server RSS grew by {growth / 2**20:.1f} MiB"


def test_every_route_limit_names_a_route_and_certificates_still_fit(app, client):
    from registry.api.bodies import MAX_BODY_BYTES, ROUTE_LIMITS
    from registry.credentials.trainings import MAX_CERTIFICATE_BYTES

    assert set(ROUTE_LIMITS) <= set(app.view_functions)
    assert ROUTE_LIMITS["v1.submit_training"] > MAX_CERTIFICATE_BYTES
    body = b"x" * (MAX_BODY_BYTES + 1)
    answer = client.post("/api/v1/login", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert "bytes at most" in answer.get_json()["error"]
