"""Helpers shared by the benchmarks: servers on loopback, memory sampling, timing."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def registry_env(instance: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, REGISTRY_INSTANCE_PATH=str(instance), REGISTRY_RATELIMIT_ENABLED="false")
    env.update(extra)
    return env


def registry_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name) or name


def start_registry(instance: Path, port: int, workers: int = 2, **env: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [registry_bin("registry-server"), "serve", "--port", str(port), "--workers", str(workers)],
        env=registry_env(instance, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/api/v1/health")
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


class PeakRSS:
    """Samples the summed RSS of a process tree in a background thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def median_rate(size_bytes: int, runs: int, action: Callable[[], None]) -> float:
    """Median MB/s (10^6 bytes per second) of ``runs`` timed calls of ``action``."""
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        rates.append(size_bytes / (time.perf_counter() - start) / 1e6)
    return statistics.median(rates)


def write_safetensors(path: Path, size_bytes: int) -> None:
    """A valid safetensors file of about ``size_bytes`` (one U8 tensor of random bytes)."""
    import json
    import struct

    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [size_bytes], "data_offsets": [0, size_bytes]}}
    )
    header += " " * (-len(header) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header.encode())
        block = os.urandom(8 * 1024 * 1024)
        remaining = size_bytes
        while remaining:
            n = min(remaining, len(block))
            fh.write(block[:n])
            remaining -= n
