"""What this machine trusts about one registry: pinned keys and the manifests it has seen.

Stored in ``<config dir>/trust/<registry>.json``::

    {"registry_keys": {key_id: {"public_key", "pinned_at", "how"}},
     "institution_keys": {institution: {key_id: {"public_key", "pinned_at", "how"}}},
     "repos": {"ns/name": {"newest": {"commit", "published_at"}, "tags": {tag: commit}}}}

Updates are read-modify-write under an exclusive lock, so parallel pulls do not lose them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from client.config import locked_update, read_json


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class TrustStore:
    """Pinned registry/institution keys and per-repo manifest history for one registry."""

    def __init__(self, config_dir: Path, registry_slug: str) -> None:
        self.path = Path(config_dir) / "trust" / f"{registry_slug}.json"

    def load(self) -> dict[str, Any]:
        data = read_json(self.path)
        data.setdefault("registry_keys", {})
        data.setdefault("institution_keys", {})
        data.setdefault("repos", {})
        return data

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Yield the stored data for changing; written back atomically on success."""
        with locked_update(self.path, self.load) as data:
            yield data

    # keys ------------------------------------------------------------------------------
    def registry_keys(self) -> dict[str, str]:
        """Pinned registry keys: key_id → base64 public key."""
        return {k: v["public_key"] for k, v in self.load()["registry_keys"].items()}

    def pin_registry_key(self, key_id: str, public_key: str, how: str) -> None:
        with self.update() as data:
            data["registry_keys"][key_id] = {
                "public_key": public_key,
                "pinned_at": utc_now(),
                "how": how,
            }

    def replace_registry_keys(self, keys: dict[str, str], how: str) -> None:
        """Forget every pinned registry key and pin ``keys`` instead (explicit acceptance)."""
        with self.update() as data:
            data["registry_keys"] = {
                k: {"public_key": v, "pinned_at": utc_now(), "how": how} for k, v in keys.items()
            }

    def institution_keys(self, institution: str) -> dict[str, str]:
        stored = self.load()["institution_keys"].get(institution, {})
        return {k: v["public_key"] for k, v in stored.items()}

    def pin_institution_key(self, institution: str, key_id: str, public_key: str, how: str) -> None:
        with self.update() as data:
            data["institution_keys"].setdefault(institution, {})[key_id] = {
                "public_key": public_key,
                "pinned_at": utc_now(),
                "how": how,
            }

    def replace_institution_keys(self, institution: str, keys: dict[str, str], how: str) -> None:
        with self.update() as data:
            data["institution_keys"][institution] = {
                k: {"public_key": v, "pinned_at": utc_now(), "how": how} for k, v in keys.items()
            }

    # manifest history ------------------------------------------------------------------
    def repo_state(self, repo: str) -> dict[str, Any]:
        state = self.load()["repos"].get(repo, {})
        return {"newest": state.get("newest"), "tags": dict(state.get("tags", {}))}

    def record_manifest(
        self, repo: str, commit: str, published_at: str, *, tag: str | None
    ) -> None:
        """Remember a verified manifest: the newest per repo, and which commit a tag named."""
        with self.update() as data:
            state = data["repos"].setdefault(repo, {"newest": None, "tags": {}})
            newest = state.get("newest")
            if newest is None or _time(published_at) >= _time(newest["published_at"]):
                state["newest"] = {"commit": commit, "published_at": published_at}
            if tag:
                state.setdefault("tags", {})[tag] = commit


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def user_only(path: Path) -> bool:
    """True when ``path`` is readable by its owner only (the token file's required mode)."""
    return (os.stat(path).st_mode & 0o077) == 0
