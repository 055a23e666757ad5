"""Client fixtures: private config/cache folders, and a live registry whose responses are
counted (and optionally throttled) by a WSGI middleware, so tests can assert how many
bytes and requests reached the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.fixtures.repos import Published, publish_folder

BIG_FILE = "extras/big.safetensors"


@dataclass
class Sent:
    """Body bytes of one response (a response still streaming after ``reset`` is dropped)."""

    path: str
    count: int = 0


@dataclass
class Traffic:
    """What the server answered since the last ``reset``: requests, and body bytes."""

    requests: list[tuple[str, str, int]] = field(default_factory=list)
    bodies: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bodies.clear()

    def bytes_for(self, suffix: str) -> int:
        with self.lock:
            return sum(b.count for b in self.bodies if b.path.endswith(suffix))

    def total_bytes(self, prefix: str = "") -> int:
        with self.lock:
            return sum(b.count for b in self.bodies if b.path.startswith(prefix))


class CountingMiddleware:
    """Counts response bytes per path; ``throttle`` (bytes/s) slows every body down."""

    def __init__(self, app: Any, traffic: Traffic) -> None:
        self.app = app
        self.traffic = traffic
        self.throttle: float | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        status: list[int] = []

        def recording_start(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(code.split()[0]))
            return start_response(code, headers, exc_info)

        result = self.app(environ, recording_start)
        sent = Sent(path)
        with self.traffic.lock:
            self.traffic.requests.append((method, path, status[0] if status else 0))
            self.traffic.bodies.append(sent)
        return self._count(result, sent)

    def _count(self, result: Iterable[bytes], sent: Sent) -> Iterator[bytes]:
        try:
            for chunk in result:
                for piece in _pieces(chunk, 256 * 1024 if self.throttle else len(chunk) or 1):
                    with self.traffic.lock:
                        sent.count += len(piece)
                    yield piece
                    if self.throttle:
                        time.sleep(len(piece) / self.throttle)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _pieces(chunk: bytes, size: int) -> Iterator[bytes]:
    view = memoryview(chunk)
    for start in range(0, len(chunk), size):
        yield bytes(view[start : start + size])


@dataclass
class CountedServer:
    server: LiveServer
    traffic: Traffic
    middleware: CountingMiddleware

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def counted_server(app: Any) -> Iterator[CountedServer]:
    """The app on loopback behind a byte-counting (and throttleable) middleware."""
    traffic = Traffic()
    middleware = CountingMiddleware(app.wsgi_app, traffic)
    app.wsgi_app = middleware
    server = LiveServer(app)
    yield CountedServer(server, traffic, middleware)
    server.stop()


@pytest.fixture
def client_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private config and cache folders for the client (also for its subprocesses)."""
    config, cache = tmp_path / "client-config", tmp_path / "client-cache"
    monkeypatch.setenv("REGISTRY_CONFIG_DIR", str(config))
    monkeypatch.setenv("REGISTRY_CACHE_DIR", str(cache))
    for name in ("REGISTRY_URL", "REGISTRY_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return {"config": config, "cache": cache}


@pytest.fixture
def make_client(counted_server: CountedServer, client_dirs: dict[str, Path]):
    """RegistryClient factory for the counted server (messages collected in ``.notices``)."""
    from client import RegistryClient

    def make(token: str | None = None) -> Any:
        notices: list[str] = []
        client = RegistryClient(url=counted_server.url, token=token, notify=notices.append)
        client.notices = notices  # type: ignore[attr-defined]
        return client

    return make


def write_safetensors(path: Path, nbytes: int, *, seed: int = 1) -> Path:
    """A valid single-tensor safetensors file of about ``nbytes`` bytes (streamed)."""
    import json
    import random
    import struct

    count = nbytes // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [count], "data_offsets": [0, 4 * count]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        left = 4 * count
        while left:
            handle.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    return path


@pytest.fixture(scope="session")
def big_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model plus one 64 MiB valid safetensors file (read-only: copy to change)."""
    folder = tmp_path_factory.mktemp("big") / "model"
    shutil.copytree(tiny_model_dir, folder)
    write_safetensors(folder / BIG_FILE, 64 * 1024 * 1024)
    return folder


@pytest.fixture
def open_tiny(registry: Any, tiny_model_dir: Path) -> Published:
    return publish_folder(registry, "demo/tiny", tiny_model_dir, tier="open")


def run_cli(*args: str, env: dict[str, str] | None = None, **kwargs: Any):
    """``python -m client`` in a subprocess (same environment by default)."""
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
