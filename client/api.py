"""``RegistryClient``: the Python API behind every ``registry-client`` command."""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from client.cache import COMMIT_RE, Cache, check_repo, export_version
from client.config import ClientSettings
from client.download import DEFAULT_WORKERS, Downloader
from client.errors import (
    AccessDenied,
    AuthenticationError,
    ConfigError,
    NotFound,
    RegistryClientError,
    RollbackRefused,
    ServerUnavailable,
    VersionWithdrawn,
)
from client.generate import Provenance
from client.http import RegistryHTTP
from client.manifest import Manifest, parse_manifest
from client.trust import TrustStore
from client.verify import ListedKey, ManifestVerifier, fingerprint, parse_key_listing
from client.witness import AuditLogInconsistent, Observation, WitnessStore, observe


def parse_ref(ref: str) -> tuple[str, str]:
    """``NS/NAME[@REV]`` → (repo, revision); the revision defaults to ``main``."""
    repo, _, revision = ref.partition("@")
    check_repo(repo)
    return repo, revision or "main"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class PullResult:
    """A verified version in the cache (and where it was exported, if asked)."""

    repo: str
    commit: str
    path: Path
    manifest: Manifest
    bytes_fetched: int
    from_cache: bool


class RegistryClient:
    """Talk to one registry: account, discovery, pull, verify, push, access requests."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: ClientSettings | None = None,
        notify: Callable[[str], None] = _stderr,
    ) -> None:
        self.settings = settings or ClientSettings.load(url=url, token=token)
        self.http = RegistryHTTP(self.settings.url, self.settings.token)
        self.cache = Cache(self.settings.cache_dir, self.settings.slug)
        self.trust = TrustStore(self.settings.config_dir, self.settings.slug)
        self.witness = WitnessStore(self.settings.config_dir, self.settings.slug, self.url)
        self.notify = notify
        self.verifier = ManifestVerifier(
            self.trust,
            registry_keys=self.registry_keys,
            institution_keys=self.institution_keys,
            notify=notify,
            registry_url=self.settings.url,
        )

    @property
    def url(self) -> str:
        return self.settings.url

    # account ---------------------------------------------------------------------------
    def login(
        self,
        *,
        token: str | None = None,
        email: str | None = None,
        password: str | None = None,
        token_name: str | None = None,
        scope: str = "write",
        accept_new_key: bool = False,
    ) -> dict[str, Any]:
        """Check a token (or create one from email + password), pin keys, remember it."""
        if token is None:
            if not email or not password:
                raise ConfigError("Log in with --token, or with --email and a password")
            name = token_name or f"registry-client on {socket.gethostname()}"[:100]
            token = self._create_token(email, password, name, scope)
        self.http.token = token
        who = self.whoami()
        self.verifier.pin_at_login(accept_new_key=accept_new_key)
        self.settings.save_login(token)
        self.settings = dataclasses.replace(self.settings, token=token)
        return who

    def _create_token(self, email: str, password: str, name: str, scope: str) -> str:
        """Log in with a password (session cookie + CSRF token), then create an API token."""
        session = self.http.call_json(
            "POST", "/api/v1/login", auth=False, json={"email": email, "password": password}
        )
        csrf = session.get("csrf_token") if isinstance(session, dict) else None
        answer = self.http.call_json(
            "POST",
            "/api/v1/tokens",
            auth=False,
            # Flask-WTF also checks the Referer on HTTPS (it must be this registry).
            headers={"X-CSRFToken": str(csrf or ""), "Referer": f"{self.url}/account/tokens"},
            json={"name": name, "scope": scope},
        )
        self.http.cookies.clear()  # the API token replaces the web session from here
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise AuthenticationError("The registry did not return a token")
        return token

    def logout(self) -> bool:
        return self.settings.forget_login()

    def whoami(self) -> dict[str, Any]:
        if not self.http.token:
            raise AuthenticationError(
                f"Not logged in to {self.url}: run 'registry-client login' or set REGISTRY_TOKEN"
            )
        return self.http.get_json("/api/whoami-v2")

    # keys ------------------------------------------------------------------------------
    def registry_keys(self) -> dict[str, ListedKey]:
        return parse_key_listing(self.http.get_json("/api/v1/keys", auth=False))

    def institution_keys(self, institution: str) -> dict[str, ListedKey]:
        try:
            payload = self.http.get_json(f"/api/v1/institutions/{quote(institution)}/keys")
        except NotFound:
            return {}
        return parse_key_listing(payload)

    def trust_key(self, key_id: str | None = None, *, institution: str | None = None) -> list[str]:
        """Explicitly accept key(s) the registry lists now; returns their fingerprints."""
        listed = self.institution_keys(institution) if institution else self.registry_keys()
        chosen = {k: v for k, v in listed.items() if v.revoked_at is None}
        if key_id is not None:
            matches = {k: v for k, v in chosen.items() if k.startswith(key_id)}
            if len(matches) != 1:
                raise NotFound(f"No single listed key matches {key_id!r}")
            chosen = matches
        if not chosen:
            raise NotFound("The registry lists no key to trust")
        if institution:
            for key in chosen.values():
                self.trust.pin_institution_key(institution, key.key_id, key.public_key, "explicit")
        elif key_id is None:
            self.trust.replace_registry_keys(
                {k: v.public_key for k, v in chosen.items()}, "explicit"
            )
        else:
            for key in chosen.values():
                self.trust.pin_registry_key(key.key_id, key.public_key, "explicit")
        return [f"{k[:16]}… {fingerprint(v.public_key)}" for k, v in chosen.items()]

    # discovery -------------------------------------------------------------------------
    def search(self, query: str | None = None, *, author: str | None = None, limit: int = 50):
        """Models matching ``query`` (name or namespace) - HF ``/api/models`` entries."""
        params = {"limit": limit}
        if query:
            params["search"] = query
        if author:
            params["author"] = author
        return self.http.get_json("/api/models", params=params)

    def model_info(self, repo: str, revision: str = "main") -> dict[str, Any]:
        check_repo(repo)
        return self.http.get_json(f"/api/models/{repo}/revision/{quote(revision, safe='')}")

    def access_status(self, repo: str, info: Mapping[str, Any]) -> tuple[bool, str]:
        """Whether this principal may download the version ``info`` describes, and why not."""
        siblings = info.get("siblings") or []
        if not siblings:
            return False, "the version lists no files"
        path = quote(str(siblings[0]["rfilename"]), safe="/")
        try:
            self.http.request("HEAD", f"/{repo}/resolve/{info['sha']}/{path}")
        except (AccessDenied, AuthenticationError, VersionWithdrawn) as error:
            return False, error.message
        return True, "you may download this version"

    def info(self, repo: str, revision: str = "main") -> dict[str, Any]:
        """Card summary, every version the registry shows you, your access."""
        info = self.model_info(repo, revision)
        commit = str(info.get("sha") or "")
        allowed, why = self.access_status(repo, info)
        versions = self.versions(repo)
        known = {version.get("commit") for version in versions}
        for cached in self.cache.cached_versions(repo):
            if cached not in known:
                versions.append({"commit": cached, "state": "unknown to the registry"})
        return {
            "repo": repo,
            "commit": commit,
            "tier": info.get("accessTier"),
            "dua": info.get("dua"),
            "state": info.get("versionState"),
            "tags": info.get("versionTags") or [],
            "base_model": info.get("baseModel"),
            "card": info.get("cardData") or {},
            "files": [(s["rfilename"], s.get("size")) for s in info.get("siblings") or []],
            "withdrawn": info.get("withdrawn"),
            "versions": versions,
            "access": {"allowed": allowed, "detail": why},
            "access_requests": self.my_access_requests(repo),
            "cached": self.cache.cached_versions(repo),
        }

    def versions(self, repo: str) -> list[dict[str, Any]]:
        """Every version of ``repo`` the registry shows you, newest first."""
        check_repo(repo)
        return list(self.http.get_json(f"/api/v1/models/{repo}/versions")["versions"])

    def version(self, repo: str, ref: str) -> dict[str, Any]:
        """One version's registry record (state, tags, publisher, dates, withdrawal)."""
        check_repo(repo)
        return self.http.get_json(f"/api/v1/models/{repo}/versions/{quote(ref, safe='')}")

    # access requests -------------------------------------------------------------------
    def access_form(self, repo: str) -> dict[str, Any]:
        """The model's tier and the fields its access request asks for."""
        check_repo(repo)
        return self.http.get_json(f"/api/v1/models/{repo}/access-form")

    def access_fields(self, repo: str) -> list[dict[str, Any]]:
        fields = self.access_form(repo).get("fields") or []
        return [f for f in fields if isinstance(f, dict) and f.get("name")]

    def request_access(self, repo: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """Submit an access request; the answer carries its status and ``still_missing``."""
        check_repo(repo)
        if not self.http.token:
            raise AuthenticationError("Log in first: registry-client login")
        return self.http.call_json(
            "POST", f"/api/v1/models/{repo}/access-requests", json={"fields": dict(fields)}
        )

    def my_access_requests(self, repo: str | None = None) -> list[dict[str, Any]]:
        """Your access requests and grants (for one model when ``repo`` is given)."""
        if not self.http.token:
            return []
        rows = self.http.get_json("/api/v1/me/access-requests")
        return [r for r in rows if isinstance(r, dict) and (repo is None or r.get("model") == repo)]

    # pull ------------------------------------------------------------------------------
    def fetch_manifest(self, repo: str, revision: str) -> dict[str, Any]:
        check_repo(repo)
        path = f"/api/v1/models/{repo}/versions/{quote(revision, safe='')}/manifest"
        record = self.http.get_json(path)
        if not isinstance(record, dict):
            raise RegistryClientError(f"The registry sent a malformed manifest for {repo}")
        return record

    def resolve(self, repo: str, revision: str, *, accept_new_key: bool = False) -> Manifest:
        """Fetch, check and remember the signed manifest ``revision`` names."""
        record = self.fetch_manifest(repo, revision)
        commit = record.get("commit")
        if not isinstance(commit, str) or not COMMIT_RE.match(commit):
            raise RegistryClientError(f"The registry sent no commit id for {repo}@{revision}")
        if COMMIT_RE.match(revision) and commit != revision:
            raise RegistryClientError(f"Asked for {revision}, the registry answered {commit}")
        manifest = parse_manifest(record, repo=repo, commit=commit)
        self.verifier.check_registry_signature(manifest, accept_new_key=accept_new_key)
        self.verifier.check_publisher_signature(manifest)
        self._check_order(manifest, revision)
        self.verifier.remember(manifest, revision)
        withdrawn = record.get("withdrawn")
        if withdrawn or record.get("state") == "withdrawn":
            detail = withdrawn if isinstance(withdrawn, dict) else {}
            raise VersionWithdrawn(
                f"{repo}@{commit} was withdrawn by the registry"
                + (f" on {str(detail.get('at'))[:10]}" if detail.get("at") else "")
                + (f": {detail.get('reason')}" if detail.get("reason") else "")
                + ". It can no longer be downloaded or used."
            )
        return manifest

    def _check_order(self, manifest: Manifest, revision: str) -> None:
        """Rollback check; an older ``main`` is accepted only if the newer one was withdrawn."""
        try:
            self.verifier.check_order(manifest, revision)
        except RollbackRefused:
            newest = self.trust.repo_state(manifest.repo)["newest"]
            if revision != "main" or newest is None:
                raise
            reason = self._withdrawal_of(manifest.repo, newest["commit"])
            if reason is None:
                raise
            self.notify(
                f"NOTICE: {manifest.repo}@{newest['commit']} was withdrawn ({reason}); main "
                f"now resolves to the older {manifest.commit}."
            )

    def _withdrawal_of(self, repo: str, commit: str) -> str | None:
        """The withdrawal reason the registry gives for a version we verified, if withdrawn."""
        try:
            record = self.fetch_manifest(repo, commit)
            parsed = parse_manifest(record, repo=repo, commit=commit)
            self.verifier.check_registry_signature(parsed, accept_new_key=False)
        except RegistryClientError:
            return None
        withdrawn = record.get("withdrawn")
        if record.get("state") != "withdrawn" and not withdrawn:
            return None
        detail = withdrawn if isinstance(withdrawn, dict) else {}
        return str(detail.get("reason") or "no reason given")

    def pull(
        self,
        ref: str,
        *,
        local_dir: Path | None = None,
        link: bool = True,
        accept_new_key: bool = False,
        quiet: bool = False,
        workers: int = DEFAULT_WORKERS,
    ) -> PullResult:
        """Download and verify ``NS/NAME[@REV]`` into the cache; returns its folder."""
        repo, revision = parse_ref(ref)
        online = True
        try:
            manifest = self.resolve(repo, revision, accept_new_key=accept_new_key)
        except ServerUnavailable as error:
            manifest, online = self._offline_manifest(repo, revision, error), False
        commit = manifest.commit
        from_cache = self.cache.has_version(repo, commit) and self._sizes_match(manifest)
        fetched = 0
        if not from_cache:
            downloader = Downloader(self.http, self.cache, workers=workers)
            fetched = downloader.fetch_all(repo, commit, manifest.files, quiet=quiet)
        path = self.cache.assemble_version(
            repo, commit, [(f.path, f.sha256) for f in manifest.files], manifest.record
        )
        self.cache.set_ref(repo, revision, commit)
        if local_dir is not None:
            marker = {"registry": self.url, "repo": repo, "commit": commit}
            path = export_version(path, Path(local_dir), link=link, marker=marker)
        if online:
            self.witness_log()
        return PullResult(repo, commit, path, manifest, fetched, from_cache)

    # audit log -------------------------------------------------------------------------
    def witness_log(self) -> Observation | None:
        """Keep the registry's newest audit checkpoint once it is proven to extend the one
        held here; a registry that cannot prove it is reported loudly, never hidden."""
        try:
            return observe(self.http.get_json, self.witness, self.trust.registry_keys())
        except AuditLogInconsistent as error:
            self.notify(f"WARNING: {error.message}")
        except RegistryClientError as error:
            self.notify(f"NOTICE: could not check the registry's audit log: {error.message}")
        return None

    def _offline_manifest(self, repo: str, revision: str, error: ServerUnavailable) -> Manifest:
        """The registry is unreachable: fall back to a version verified here before."""
        commit = self.cached_commit(repo, revision)
        record = self.cache.read_manifest_record(repo, commit) if commit else None
        if commit is None or record is None:
            raise error
        self.notify(
            f"NOTICE: {self.url} is unreachable; using the cached {repo}@{commit} as verified "
            "earlier, without checking whether it was withdrawn since."
        )
        return parse_manifest(record, repo=repo, commit=commit)

    def _sizes_match(self, manifest: Manifest) -> bool:
        folder = self.cache.version_dir(manifest.repo, manifest.commit)
        for file in manifest.files:
            try:
                if (folder / file.path).stat().st_size != file.size:
                    return False
            except FileNotFoundError:
                return False
        return True

    def cached_commit(self, repo: str, revision: str) -> str | None:
        """The commit a revision last resolved to on this machine (for offline use)."""
        commit = self.cache.get_ref(repo, revision)
        if commit and self.cache.has_version(repo, commit):
            return commit
        for cached in self.cache.cached_versions(repo):
            record = self.cache.read_manifest_record(repo, cached) or {}
            try:
                tag = json.loads(str(record.get("manifest"))).get("tag")
            except ValueError:
                continue
            if tag == revision:
                return cached
        return None

    # generate --------------------------------------------------------------------------
    def open_model(self, ref: str, *, quiet: bool = False) -> tuple[Path, Provenance]:
        """A local folder to sample from, refusing withdrawn versions whenever online."""
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            result = self.pull(ref, quiet=quiet)
            return result.path, Provenance(result.repo, result.commit, self.url)
        located = self.cache.locate(folder) or _exported_from(folder, self.url)
        if located is None:
            return folder, Provenance(folder.resolve().name, "unregistered local folder")
        repo, commit = located
        self.refuse_if_withdrawn(repo, commit)
        return folder, Provenance(repo, commit, self.url)

    def refuse_if_withdrawn(self, repo: str, commit: str) -> None:
        """Ask the registry about a cached version before it is used; ``VersionWithdrawn``
        if it was withdrawn. Offline, say that nothing could be checked."""
        try:
            self.resolve(repo, commit)
        except ServerUnavailable:
            self.notify(
                f"NOTICE: {self.url} is unreachable; could not check whether {repo}@{commit} "
                "was withdrawn."
            )

    # verify ----------------------------------------------------------------------------
    def verify(self, ref: str) -> list[tuple[str, str]]:
        """Re-hash a cached version and re-check its signatures; returns (path, problem).

        Online, the registry is asked first: a withdrawn version is refused, not verified."""
        from client.cache_check import verify_cached_version

        repo, revision = parse_ref(ref)
        commit = self.cached_commit(repo, revision)
        if commit is None:
            raise NotFound(f"{ref} is not in the cache at {self.cache.root}; pull it first")
        self.refuse_if_withdrawn(repo, commit)
        offline = ManifestVerifier(
            self.trust,
            registry_keys=None,
            institution_keys=None,
            notify=self.notify,
            registry_url=self.url,
        )
        return verify_cached_version(self.cache, offline, repo, commit)


def _exported_from(folder: Path, url: str) -> tuple[str, str] | None:
    """(repo, commit) from the marker ``pull --local-dir`` leaves, if it names this registry."""
    from client.cache import EXPORT_MARKER

    try:
        marker = json.loads((folder / EXPORT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("registry") != url:
        return None
    repo, commit = str(marker.get("repo", "")), str(marker.get("commit", ""))
    return (repo, commit) if COMMIT_RE.match(commit) and "/" in repo else None
