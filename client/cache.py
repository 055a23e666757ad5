"""The local cache: verified content-addressed blobs, and one folder per verified version.

Layout under the cache folder (see ``client.config``)::

    blobs/sha256/ab/<sha256>                 verified file contents, read-only
    incomplete/<sha256>.part                 partial downloads, resumed with Range
    models/<registry>/<ns>/<name>/
        versions/<commit>/...                a diffusers folder: hard links to the blobs
        manifests/<commit>.json              the signed manifest record it was checked against
        refs/<revision>                      the commit a tag or ``main`` last resolved to

Only verified bytes reach ``blobs/``; a version folder appears (by one rename) only after
every file in it verified, so ``DiffusionPipeline.from_pretrained(folder)`` never sees a
half-downloaded model.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from client.config import write_json
from client.errors import ConfigError, IntegrityError
from client.shared.rules import COMMIT_RE, NAME_RE, NAMESPACE_RE, REF_RE, SHA256_RE

EXPORT_MARKER = ".roentgen-registry.json"


def check_repo(repo: str) -> tuple[str, str]:
    """Split ``NS/NAME``, refusing anything that could escape a folder."""
    namespace, _, name = repo.partition("/")
    if not NAMESPACE_RE.match(namespace) or not NAME_RE.match(name) or ".." in name:
        raise ConfigError(
            f"Invalid model {repo!r}: use NAMESPACE/NAME (letters, digits, '-', '_', '.')"
        )
    return namespace, name


def check_relative_path(path: str) -> str:
    """A manifest path must be a plain relative POSIX path inside the version folder."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in path)
    ):
        raise IntegrityError(f"The manifest names an unsafe file path {path!r}; refusing it")
    return path


class Cache:
    """One cache folder, seen from one registry (``slug`` names the registry)."""

    def __init__(self, root: Path, registry_slug: str) -> None:
        self.root = Path(root)
        self.slug = registry_slug

    # blobs -------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise IntegrityError(f"Not a sha256 digest: {sha256!r}")
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def partial_path(self, sha256: str) -> Path:
        self.blob_path(sha256)  # validates the digest
        return self.root / "incomplete" / f"{sha256}.part"

    def has_blob(self, sha256: str, size: int) -> bool:
        try:
            return self.blob_path(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def install_blob(self, partial: Path, sha256: str) -> Path:
        """Move a verified partial file into ``blobs/`` (atomic; read-only from then on)."""
        target = self.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(partial, 0o444)
        os.replace(partial, target)
        return target

    # versions ----------------------------------------------------------------------------
    def repo_dir(self, repo: str) -> Path:
        namespace, name = check_repo(repo)
        return self.root / "models" / self.slug / namespace / name

    def version_dir(self, repo: str, commit: str) -> Path:
        if not COMMIT_RE.match(commit):
            raise IntegrityError(f"Not a commit id: {commit!r}")
        return self.repo_dir(repo) / "versions" / commit

    def manifest_record_path(self, repo: str, commit: str) -> Path:
        self.version_dir(repo, commit)
        return self.repo_dir(repo) / "manifests" / f"{commit}.json"

    def read_manifest_record(self, repo: str, commit: str) -> dict[str, Any] | None:
        path = self.manifest_record_path(repo, commit)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            raise IntegrityError(f"The cached manifest record {path} is damaged") from None
        return value if isinstance(value, dict) else None

    def has_version(self, repo: str, commit: str) -> bool:
        return self.version_dir(repo, commit).is_dir() and (
            self.read_manifest_record(repo, commit) is not None
        )

    def assemble_version(
        self, repo: str, commit: str, files: Iterable[tuple[str, str]], record: dict[str, Any]
    ) -> Path:
        """Build the version folder from verified blobs in a temp folder, then rename it in."""
        final = self.version_dir(repo, commit)
        write_json(self.manifest_record_path(repo, commit), record, mode=0o644)
        if final.is_dir():
            return final
        temp = final.parent / f".tmp-{commit}-{secrets.token_hex(4)}"
        temp.mkdir(parents=True)
        try:
            for path, sha256 in files:
                target = temp / check_relative_path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                place_file(self.blob_path(sha256), target, link=True)
            try:
                os.rename(temp, final)
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(temp)  # another process finished the same version first
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return final

    def set_ref(self, repo: str, revision: str, commit: str) -> None:
        if not REF_RE.match(revision):
            return
        path = self.repo_dir(repo) / "refs" / revision
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{revision}.{secrets.token_hex(4)}")
        temp.write_text(commit, encoding="ascii")
        os.replace(temp, path)

    def get_ref(self, repo: str, revision: str) -> str | None:
        if COMMIT_RE.match(revision):
            return revision
        if not REF_RE.match(revision):
            return None
        with contextlib.suppress(FileNotFoundError):
            value = (self.repo_dir(repo) / "refs" / revision).read_text(encoding="ascii").strip()
            return value if COMMIT_RE.match(value) else None
        return None

    def cached_versions(self, repo: str) -> list[str]:
        folder = self.repo_dir(repo) / "versions"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if COMMIT_RE.match(p.name))

    def locate(self, folder: Path) -> tuple[str, str] | None:
        """``(repo, commit)`` when ``folder`` is a version folder of this cache."""
        try:
            rel = Path(folder).resolve().relative_to((self.root / "models").resolve())
        except ValueError:
            return None
        parts = rel.parts
        if len(parts) != 5 or parts[3] != "versions" or not COMMIT_RE.match(parts[4]):
            return None
        return f"{parts[1]}/{parts[2]}", parts[4]

    def iter_version_files(self, repo: str, commit: str) -> Iterator[Path]:
        root = self.version_dir(repo, commit)
        for path in sorted(root.rglob("*")):
            if path.is_file() or path.is_symlink():
                yield path


def place_file(source: Path, target: Path, *, link: bool) -> None:
    """Hard-link ``source`` at ``target`` (or copy: asked for, or across file systems)."""
    if target.exists() or target.is_symlink():
        target.unlink()
    if link:
        try:
            os.link(source, target)
            return
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)


def export_version(
    source: Path, destination: Path, *, link: bool, marker: dict[str, str] | None = None
) -> Path:
    """Place a verified version folder's files into ``destination`` (``--local-dir``).

    ``marker`` (registry, repo, commit) is written to a hidden file so that ``generate`` can
    label images from that folder and check the version's withdrawal."""
    destination.mkdir(parents=True, exist_ok=True)
    if marker is not None:
        write_json(destination / EXPORT_MARKER, marker, mode=0o644)
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(source)
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        place_file(path, target, link=link)
    return destination
