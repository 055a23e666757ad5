"""``push``: validate a folder locally, upload it through a resumable session, commit.

Validation runs the validator the registry runs at commit (``client.shared.validation``,
standard library + PyYAML only) before any request, so every problem is listed without
sending a byte. The upload session id is remembered under ``<cache>/uploads/``: a second ``push`` of
the same folder, repo and tag resumes each file from the offset the registry reports.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from client.cache import check_repo
from client.cache_check import sha256_file
from client.config import read_json, write_json
from client.errors import ConfigError, RegistryClientError, ValidationError
from client.http import RegistryHTTP
from client.shared.validation import folder_entries, validate_folder

CHUNK_SIZE = 64 * 1024 * 1024  # the largest PUT body; a file up to this goes in one PUT
PARALLEL = 4  # files in flight at once, each on its thread's keep-alive connection
_CHUNK_ALIGN = 64 * 1024


def chunk_size_for(size: int, limit: int | None = None) -> int:
    """The chunk size for a file: the whole file up to ``limit`` (one PUT, stored in one
    pass), else the fewest equal chunks of at most ``limit``, rounded up to 64 KiB."""
    limit = CHUNK_SIZE if limit is None else limit
    if size <= limit:
        return max(size, 1)
    count = -(-size // limit)
    each = -(-size // count)
    return min(limit, -(-each // _CHUNK_ALIGN) * _CHUNK_ALIGN) if limit >= _CHUNK_ALIGN else each


@dataclasses.dataclass(frozen=True)
class LocalFile:
    path: str
    size: int
    sha256: str
    source: Path


@dataclasses.dataclass(frozen=True)
class PushResult:
    repo: str
    state: str
    version: dict[str, Any]
    model_url: str
    bytes_sent: int


def validate_local(folder: Path) -> tuple[dict[str, Any], list[LocalFile]]:
    """Run the registry's validator; raise with every problem, or list the files to send."""
    card, problems = validate_folder(folder)
    if problems:
        raise ValidationError(
            f"{folder} has {len(problems)} problem(s); nothing was sent to the registry:",
            problems=[(p.path, p.reason) for p in problems],
        )
    entries, _ = folder_entries(folder)
    paths = sorted(entries)
    # sha256 releases the GIL: the files of a folder are hashed side by side.
    with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(paths)))) as pool:
        digests = list(pool.map(lambda path: sha256_file(folder / path), paths))
    files = [
        LocalFile(path, entries[path].size, digest, folder / path)
        for path, digest in zip(paths, digests, strict=True)
    ]
    return card, files


def load_signing_key(path: Path) -> Any:
    """An Ed25519 private key: PEM (PKCS#8) or a base64 raw 32-byte seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"Cannot read the signing key {path}: {error.strerror}") from None
    if b"PRIVATE KEY" in raw:
        key = load_pem_private_key(raw, password=None)
    else:
        try:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw.strip(), validate=True))
        except ValueError:
            raise ConfigError(f"{path} is neither a PEM nor a base64 Ed25519 key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def public_key_id(private_key: Any) -> tuple[str, str]:
    """(key_id = sha256 hex of the raw public key, base64 raw public key)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest(), base64.b64encode(raw).decode()


class Uploader:
    """One push: session (new or resumed), chunked uploads, optional signature, commit."""

    def __init__(
        self,
        http: RegistryHTTP,
        state_dir: Path,
        *,
        quiet: bool = False,
        notify: Callable[[str], None] = print,
    ) -> None:
        self.http = http
        self.state_dir = state_dir
        self.quiet = quiet
        self.notify = notify

    def push(
        self,
        folder: Path,
        repo: str,
        *,
        tag: str | None = None,
        base: str | None = None,
        tier: str | None = None,
        dua: str | None = None,
        access_fields: Sequence[Mapping[str, str]] = (),
        sign_key: Path | None = None,
    ) -> PushResult:
        check_repo(repo)
        private_key = load_signing_key(sign_key) if sign_key else None
        card, files = validate_local(Path(folder))
        body: dict[str, Any] = {
            "repo": repo,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
        }
        tier = tier or card.get("access_tier")
        if tier:
            body["tier"] = str(tier)
        dua = dua or card.get("dua")
        if dua and str(dua).lower() != "none":
            body["dua"] = str(dua)
        for key, value in (("tag", tag), ("base", base)):
            if value:
                body[key] = value
        if access_fields:
            body["access_fields"] = [dict(f) for f in access_fields]
        state_file = self.state_dir / f"{_session_key(self.http.url, body)}.json"
        session = self._open_session(state_file, body)
        sent = self._send_files(session, {f.path: f for f in files})
        commit_body: dict[str, Any] = {}
        if private_key is not None:
            commit_body = self._sign(session["id"], private_key)
        answer = self.http.call_json(
            "POST", f"/api/v1/uploads/{session['id']}/commit", json=commit_body
        )
        state_file.unlink(missing_ok=True)
        namespace, name = repo.split("/")
        return PushResult(
            repo,
            str(answer.get("state")),
            answer.get("version") or {},
            f"{self.http.url}/models/{namespace}/{name}",
            sent,
        )

    def _open_session(self, state_file: Path, body: dict[str, Any]) -> dict[str, Any]:
        previous = read_json(state_file).get("id")
        if previous:
            try:
                session = self.http.get_json(f"/api/v1/uploads/{quote(str(previous))}")
            except RegistryClientError:
                session = None
            # "committed": the commit's answer was lost; committing again returns the version.
            if isinstance(session, dict) and session.get("state") in ("open", "committed"):
                self.notify(f"Resuming upload session {previous}")
                return session
        session = self.http.call_json("POST", "/api/v1/uploads", json=body)
        write_json(state_file, {"id": session["id"]}, mode=0o600)
        return session

    def _send_files(self, session: dict[str, Any], files: Mapping[str, LocalFile]) -> int:
        pending = [f for f in session.get("files", []) if not f.get("complete")]
        for entry in pending:
            if entry["path"] not in files:
                raise RegistryClientError(
                    f"The upload session lists {entry['path']!r}, which is not in the folder"
                )
        total = sum(int(f["size"]) - int(f.get("received", 0)) for f in pending)
        bar = None
        if not self.quiet and total:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload")
        progress = _Progress(bar)
        # Largest first, so the longest file starts at once and the small ones fill in.
        pending.sort(key=lambda f: -int(f["size"]))
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(pending)))) as pool:
                futures = [
                    pool.submit(
                        self._send_file, str(entry["upload_url"]), files[entry["path"]], progress
                    )
                    for entry in pending
                ]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    progress.stop.set()  # the other files stop after their current chunk
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            if bar is not None:
                bar.close()
        return progress.sent

    def _send_file(self, url: str, local: LocalFile, progress: _Progress) -> None:
        if progress.stop.is_set():
            return
        head = self.http.request("HEAD", url)
        offset = int(head.headers.get("Upload-Offset", 0))
        chunk_size = chunk_size_for(local.size)
        with open(local.source, "rb") as handle:
            while offset < local.size or local.size == 0:
                if progress.stop.is_set():
                    return
                handle.seek(offset)
                chunk = handle.read(min(chunk_size, local.size - offset))
                end = offset + len(chunk) - 1
                headers = {"Content-Type": "application/octet-stream"}
                if local.size:
                    headers["Content-Range"] = f"bytes {offset}-{end}/{local.size}"
                response = self.http.request("PUT", url, data=chunk, headers=headers, ok=(409,))
                if response.status_code == 409 and "Upload-Offset" in response.headers:
                    offset = int(response.headers["Upload-Offset"])  # resume where it has bytes
                    continue
                if response.status_code == 409:
                    raise RegistryClientError(response.headers.get("X-Error-Message", "conflict"))
                offset += len(chunk)
                progress.add(len(chunk))
                if local.size == 0:
                    break

    def _sign(self, session_id: str, private_key: Any) -> dict[str, str]:
        preview = self.http.get_json(f"/api/v1/uploads/{session_id}/manifest-preview")
        manifest = str(preview["manifest"]).encode("ascii")
        key_id, _ = public_key_id(private_key)
        signature = base64.b64encode(private_key.sign(manifest)).decode()
        return {"publisher_signature": signature, "publisher_key_id": key_id}


class _Progress:
    """Bytes sent by every file's thread, the progress bar, and the signal to stop."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.sent = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.sent += n
            if self.bar is not None:
                self.bar.update(n)


def _session_key(url: str, body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(url.encode())
    digest.update(repr(sorted((k, repr(v)) for k, v in body.items())).encode())
    return digest.hexdigest()[:24]
