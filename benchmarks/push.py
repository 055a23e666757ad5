"""Upload throughput: one large .safetensors through the upload API vs the raw cost of the
same bytes (sha256 + write + fsync to the same disk).

Starts `registry-server serve` (gunicorn), opens an upload session, sends every file with
zero-copy `sendfile` (so the client is not the bottleneck) — whole, or in `--chunk-mb`
chunks — commits (the server verifies the sha256 and validates the version), and samples the
server's peak RSS. Raw cost and upload alternate run by run. Prints MB/s for both, the ratio
and the peak RSS.

    .venv/bin/python -m benchmarks.push --size-mb 1024 --runs 3
    .venv/bin/python -m benchmarks.push --size-mb 1024 --chunk-mb 64 --runs 3
    .venv/bin/python -m benchmarks.push --size-mb 256 --runs 5 --client --mlflow
    .venv/bin/python -m benchmarks.push --size-mb 256 --chunk-mb 64 --storage s3

``--client`` also times ``registry-client push`` of the same folder, ``--mlflow`` MLflow's
``log_artifacts`` (see ``benchmarks/alternatives.py``), ``--storage s3`` puts the registry's
blobs in a local S3 server.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.common import (
    PeakRSS,
    free_port,
    registry_env,
    start_registry,
    stop,
    write_safetensors,
)

BIG = "unet/large.safetensors"
READ = 4 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(READ):
            digest.update(block)
    return digest.hexdigest()


def raw_cost(source: Path, target: Path) -> float:
    """Seconds to sha256 the file while writing a copy to ``target`` and fsync it.

    The copy is kept, as the registry keeps each uploaded blob: on virtual disks, writing
    into freshly freed blocks can be several times faster than allocating new ones.
    """
    start = time.perf_counter()
    digest = hashlib.sha256()
    view = memoryview(bytearray(READ))
    with source.open("rb", buffering=0) as src, target.open("wb", buffering=0) as dst:
        while n := src.readinto(view):
            digest.update(view[:n])
            dst.write(view[:n])
        os.fsync(dst.fileno())
    return time.perf_counter() - start


def make_tokens(instance: Path, slugs: list[str], **env: str) -> list[str]:
    """A fresh schema, and a publisher with a write token in each institution of ``slugs``."""
    from registry.accounts.tokens import create_token
    from registry.config import Settings
    from registry.context import build_registry
    from registry.db import Base
    from registry.models import AuditHead, Institution, Membership, User

    registry = build_registry(Settings.from_env(registry_env(instance, **env)))
    # The models, not the migrations: the benchmark measures uploads, not schema history.
    Base.metadata.create_all(registry.engine)
    tokens = []
    with registry.sessions() as db:
        db.add(AuditHead(id=1, seq=0, hash="0" * 64))
        for slug in slugs:
            institution = Institution(slug=slug, name=slug)
            user = User(email=f"bench@{slug}.org", display_name="bench", password_hash="!")
            db.add_all([institution, user])
            db.flush()
            db.add(Membership(user_id=user.id, institution_id=institution.id, role="publisher"))
            db.commit()
            _, token = create_token(
                db, user, name="bench", scope="write", expires_in_days=1,
                default_days=1, max_days=1, now=registry.now(),
            )  # fmt: skip
            tokens.append(token)
        db.commit()  # the last token too
    registry.engine.dispose()
    return tokens


class Uploader:
    """The upload API over one keep-alive connection; file bodies go out with sendfile."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.auth = {"Authorization": f"Bearer {token}"}

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {**self.auth, "Content-Type": "application/json"}
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def put_range(self, url: str, path: Path, start: int, length: int, total: int) -> None:
        self.conn.putrequest("PUT", url)
        for name, value in self.auth.items():
            self.conn.putheader(name, value)
        self.conn.putheader("Content-Range", f"bytes {start}-{start + length - 1}/{total}")
        self.conn.putheader("Content-Length", str(length))
        self.conn.endheaders()
        with path.open("rb") as fh:
            sent = 0
            while sent < length:
                sent += self.conn.sock.sendfile(fh, start + sent, length - sent)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"PUT {url} answered {response.status}: {body[:500]!r}")


LARGE_FILE = 1 << 20  # sent on a stream of its own


def push(port: int, token: str, repo: str, folder: Path, chunk: int) -> float:
    """Open, send every file, commit; return seconds."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    declared = [
        {"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size,
         "sha256": file_sha256(p)}
        for p in files
    ]  # fmt: skip
    client = Uploader(port, token)
    start = time.perf_counter()
    status, session = client.json("POST", "/api/v1/uploads",
                                  {"repo": repo, "tier": "open", "files": declared})  # fmt: skip
    if status != 201:
        raise RuntimeError(f"open session: {status} {session}")

    def send(entries: list[dict[str, Any]]) -> None:
        mine = Uploader(port, token)  # one connection per stream
        for entry in entries:
            path, size = folder / entry["path"], entry["size"]
            url = f"/api/v1/uploads/{session['id']}/files/{quote(entry['path'])}"
            for offset in range(0, size, chunk):
                mine.put_range(url, path, offset, min(chunk, size - offset), size)

    # Like a real client: the large file on one stream, the small ones beside it.
    pending = [e for e in session["files"] if not e["complete"]]
    large = [e for e in pending if e["size"] >= LARGE_FILE]
    small = [e for e in pending if e["size"] < LARGE_FILE]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(send, large), pool.submit(send, small[::2]),
                   pool.submit(send, small[1::2])]  # fmt: skip
        for future in futures:
            future.result()
    # A fresh connection: gunicorn closes keep-alive connections idle for 2 s.
    committer = Uploader(port, token)
    status, body = committer.json("POST", f"/api/v1/uploads/{session['id']}/commit", {})
    if status != 200 or body["state"] != "published":
        raise RuntimeError(f"commit: {status} {body}")
    return time.perf_counter() - start


def client_push(port: int, token: str, repo: str, folder: Path, work: Path) -> float:
    """``registry-client push`` (its Uploader: parallel files, chunk size from the file size)."""
    from client.http import RegistryHTTP
    from client.push import Uploader

    http = RegistryHTTP(f"http://127.0.0.1:{port}", token, timeout=600)
    uploader = Uploader(http, work / f"client-state-{repo.replace('/', '-')}", quiet=True)
    start = time.perf_counter()
    result = uploader.push(folder, repo, tier="open")
    if result.state != "published":
        raise RuntimeError(f"client push: {result.state}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument(
        "--chunk-mb", type=int, default=0, help="PUT chunk size; 0 sends each file whole"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--storage", choices=["local", "s3"], default="local",
                        help="s3: the registry stores blobs in a local moto S3 server")  # fmt: skip
    parser.add_argument("--client", action="store_true", help="also time registry-client push")
    parser.add_argument(
        "--mlflow", action="store_true", help="also time MLflow log_artifacts (side venv)"
    )
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024

    from benchmarks.alternatives import LocalS3, MlflowServer

    s3 = LocalS3() if args.storage == "s3" else None
    env = {"REGISTRY_STORAGE_URL": s3.storage_url} if s3 else {}
    mlflow: MlflowServer | None = None
    with tempfile.TemporaryDirectory(prefix="push-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        instance = work / "instance"
        folder = work / "model"
        from registry.demo import build_demo_folder

        build_demo_folder(folder)
        write_safetensors(folder / BIG, size)
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        slugs = [f"bench{i}" for i in range(args.runs)] + [f"client{i}" for i in range(args.runs)]
        tokens = make_tokens(instance, slugs, **env)
        port = free_port()
        server = start_registry(instance, port, workers=args.workers, **env)
        if args.mlflow:
            mlflow = MlflowServer(work / "mlflow")
        raw: list[float] = []
        times: list[float] = []
        clients: list[float] = []
        mlflows: list[float] = []
        try:
            with PeakRSS(server.pid) as rss:
                # One institution per run: the same bytes are not deduplicated across them.
                for i in range(args.runs):
                    raw.append(raw_cost(folder / BIG, instance / f"raw-copy-{i}.bin"))
                    # Whole files: larger than any file (the safetensors header adds bytes).
                    chunk = (args.chunk_mb << 20) or 1 << 62
                    times.append(push(port, tokens[i], f"bench{i}/large", folder, chunk))
                    if args.client:
                        repo = f"client{i}/large"
                        clients.append(client_push(port, tokens[args.runs + i], repo, folder, work))
                    if mlflow is not None:
                        mlflows.append(mlflow.upload(folder)[0])
        finally:
            stop(server)
            if mlflow is not None:
                mlflow.stop()
            if s3 is not None:
                s3.stop()

    upload_rate = total / statistics.median(times) / 1e6
    raw_rate = size / statistics.median(raw) / 1e6
    ratios = [(total / t) / (size / r) for t, r in zip(times, raw, strict=True)]
    small = (total - size) / 1e6
    print(
        f"file: {args.size_mb} MiB .safetensors (+ {small:.1f} MB of small files), "
        + (f"chunks of {args.chunk_mb} MiB" if args.chunk_mb else "each file in one PUT")
        + f", {args.workers} gunicorn workers, {args.storage} store, runs: {args.runs} (medians)"
    )
    print(f"upload API (open, PUT, commit)          : {upload_rate:8.1f} MB/s")
    print(f"raw cost (sha256 + write + fsync)       : {raw_rate:8.1f} MB/s")
    print(
        f"ratio upload/raw                        : {upload_rate / raw_rate:8.2f}  (target >= 0.8)"
    )
    print(f"ratio per run (raw measured just before): {', '.join(f'{r:.2f}' for r in ratios)}")
    if clients:
        client_rate = total / statistics.median(clients) / 1e6
        print(f"registry-client push                    : {client_rate:8.1f} MB/s")
    if mlflows:
        mlflow_rate = total / statistics.median(mlflows) / 1e6
        print(f"MLflow log_artifacts (same files)       : {mlflow_rate:8.1f} MB/s")
        print(
            f"ratio upload/MLflow                     : {upload_rate / mlflow_rate:8.2f}"
            "  (target >= 2.5)"
        )
        if clients:
            print(f"ratio registry-client push/MLflow       : {client_rate / mlflow_rate:8.2f}")
    print(f"server peak RSS (all gunicorn processes): {rss.peak / 2**20:8.0f} MiB")


if __name__ == "__main__":
    main()
