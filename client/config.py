"""Client settings: flags, then ``REGISTRY_*`` environment variables, then the config file.

Layout (``REGISTRY_CONFIG_DIR`` overrides the folder, for tests and shared machines)::

    $XDG_CONFIG_HOME/roentgen-registry/      (default ~/.config/roentgen-registry)
        config.json      {"url": "https://registry.example.org"}   the default registry
        tokens.json      {"<registry url>": "<token>"}             mode 0600
        trust/<registry>.json                                       pinned keys, seen manifests

    $XDG_CACHE_HOME/roentgen-registry/       (default ~/.cache/roentgen-registry;
                                              ``REGISTRY_CACHE_DIR`` overrides)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock

from client.errors import ConfigError

APP_DIR = "roentgen-registry"
DEFAULT_URL = "http://127.0.0.1:8000"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding the config file, tokens and pinned keys."""
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_CONFIG_DIR"):
        return Path(env["REGISTRY_CONFIG_DIR"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / APP_DIR


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding downloaded blobs and version folders."""
    env = os.environ if environ is None else environ
    if env.get("REGISTRY_CACHE_DIR"):
        return Path(env["REGISTRY_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / APP_DIR


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; refuses anything else."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"Invalid registry URL {url!r}; use e.g. https://registry.example.org")
    if parts.query or parts.fragment:
        raise ConfigError(f"The registry URL {url!r} must not carry a query or fragment")
    return url


def registry_slug(url: str) -> str:
    """A file-name-safe name for a registry URL (``http-127.0.0.1-8000``)."""
    parts = urlsplit(url)
    raw = f"{parts.scheme}-{parts.netloc}{parts.path}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-")


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """Where the registry is, who we are, and where local state lives."""

    url: str
    token: str | None
    config_dir: Path
    cache_dir: Path

    @classmethod
    def load(
        cls,
        *,
        url: str | None = None,
        token: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ClientSettings:
        """Flags win over ``REGISTRY_URL`` / ``REGISTRY_TOKEN``, which win over the files."""
        env = os.environ if environ is None else environ
        folder = config_dir(env)
        stored = read_json(folder / "config.json")
        chosen = url or env.get("REGISTRY_URL") or stored.get("url") or DEFAULT_URL
        chosen = normalize_url(str(chosen))
        secret = token or env.get("REGISTRY_TOKEN") or read_json(folder / "tokens.json").get(chosen)
        return cls(chosen, secret or None, folder, cache_dir(env))

    @property
    def slug(self) -> str:
        return registry_slug(self.url)

    def save_login(self, token: str) -> None:
        """Remember the token (mode 0600) and make this registry the default."""
        tokens = read_json(self.config_dir / "tokens.json")
        tokens[self.url] = token
        write_json(self.config_dir / "tokens.json", tokens, mode=0o600)
        config = read_json(self.config_dir / "config.json")
        config["url"] = self.url
        write_json(self.config_dir / "config.json", config, mode=0o644)

    def forget_login(self) -> bool:
        """Remove the stored token for this registry; True if there was one."""
        tokens = read_json(self.config_dir / "tokens.json")
        if tokens.pop(self.url, None) is None:
            return False
        write_json(self.config_dir / "tokens.json", tokens, mode=0o600)
        return True


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); fix or delete it") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix or delete it")
    return value


def write_json(path: Path, value: Any, *, mode: int) -> None:
    """Write atomically (temp file + rename) with ``mode`` set before any byte is written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked_update(path: Path, load: Callable[[], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``load()`` under an OS lock (``<path>.lock``, every platform), yielded for changing and
    written back atomically on success: concurrent clients never lose each other's edits."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(str(path.with_suffix(".lock"))):
        data = load()
        yield data
        write_json(path, data, mode=0o600)
