"""``verify``: re-hash a cached version and re-check its signatures, offline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from client.cache import Cache
from client.errors import IntegrityError, KeyChanged
from client.manifest import parse_manifest
from client.verify import ManifestVerifier

HASH_BUFFER = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """Stream a file through sha256 with one reusable buffer."""
    hasher = hashlib.sha256()
    buffer = memoryview(bytearray(HASH_BUFFER))
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(buffer[:count])
    return hasher.hexdigest()


def verify_cached_version(
    cache: Cache, verifier: ManifestVerifier, repo: str, commit: str
) -> list[tuple[str, str]]:
    """Every problem found as (path, reason); a damaged version is removed from the cache."""
    record = cache.read_manifest_record(repo, commit)
    if record is None:
        return [("", "no manifest record in the cache")]
    try:
        manifest = parse_manifest(record, repo=repo, commit=commit)
        verifier.check_registry_signature(manifest, accept_new_key=False)
        verifier.check_publisher_signature(manifest)
    except KeyChanged as error:
        return [("(manifest)", error.message)]  # a trust question, not damage: keep the files
    except IntegrityError as error:
        _evict(cache, repo, commit, [])
        return [("(manifest)", error.message)]
    problems: list[tuple[str, str]] = []
    folder = cache.version_dir(repo, commit)
    listed = {f.path for f in manifest.files}
    bad_blobs = []
    for file in manifest.files:
        path = folder / file.path
        if not path.is_file():
            problems.append((file.path, "is missing"))
            continue
        size = path.stat().st_size
        if size != file.size:
            problems.append((file.path, f"is {size} bytes, the manifest says {file.size}"))
            bad_blobs.append(file.sha256)
            continue
        digest = sha256_file(path)
        if digest != file.sha256:
            problems.append((file.path, f"sha256 is {digest}, the manifest says {file.sha256}"))
            bad_blobs.append(file.sha256)
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in listed:
            problems.append((rel, "is not in the signed manifest"))
    if problems:
        _evict(cache, repo, commit, bad_blobs)
    return problems


def _evict(cache: Cache, repo: str, commit: str, blobs: list[str]) -> None:
    """Take a damaged version (and its damaged blobs) out, so the next pull fetches them."""
    shutil.rmtree(cache.version_dir(repo, commit), ignore_errors=True)
    for sha256 in blobs:
        cache.blob_path(sha256).unlink(missing_ok=True)
