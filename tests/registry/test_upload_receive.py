"""The upload receive path under gunicorn: bodies are read from the socket straight into the
store's buffer, and a keep-alive connection stays in step with the requests on it."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from tests.registry.publishing_helpers import UploadApi, make_token, make_user

MiB = 1024 * 1024


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (with Content-Length) from ``sock``; leftovers stay in ``buffer``."""
    for _ in range(10_000):
        if b"\r\n\r\n" in buffer:
            break
        buffer += sock.recv(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        rest += sock.recv(65536)
    buffer[:] = rest[length:]
    return int(lines[0].split()[1]), headers, rest[:length]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pipelined_requests_after_a_large_body_on_one_connection(registry, start_server):
    token = make_token(registry, make_user(registry, "p@mgh.org", institution="mgh"))
    server = start_server()
    api = UploadApi(token, url=server.url)
    first, second = os.urandom(9 * MiB + 7), os.urandom(3 * MiB + 1)
    files = {"a.txt": first, "b.txt": second}
    opened = api.open("mgh/pipe", files, tier="open")
    assert opened.status == 201, opened.body
    session = opened.body
    urls = {f["path"]: f["upload_url"] for f in session["files"]}

    def put(path: str, data: bytes, start: int, total: int) -> bytes:
        return (
            f"PUT {urls[path]} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Range: bytes {start}-{start + len(data) - 1}/{total}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode() + data

    head = (
        f"HEAD {urls['a.txt']} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    half = len(first) // 2
    # Everything in one write: each body is followed at once by the next request's bytes,
    # which gunicorn reads ahead with the body and the receive path must hand back.
    wire = put("a.txt", first[:half], 0, len(first)) + put("a.txt", first[half:], half,
                                                            len(first)) + head  # fmt: skip
    wire += put("b.txt", second, 0, len(second))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(wire)
        buffer = bytearray()
        answers = [_read_response(sock, buffer) for _ in range(3)]
        # HEAD has no body: read its headers only.
        status, headers, _ = answers[2]
        answers.append(_read_response(sock, buffer))
    assert [a[0] for a in answers] == [200, 200, 200, 200], answers
    assert answers[1][1]["upload-offset"] == str(len(first))
    assert headers["upload-complete"] == "true"
    assert answers[3][1]["upload-offset"] == str(len(second))
    for data in (first, second):
        with registry.blobs.open(hashlib.sha256(data).hexdigest()) as fh:
            assert fh.read() == data
