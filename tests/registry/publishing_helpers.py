"""Helpers for the publishing tests: users, tokens, and a small upload client that speaks
the upload API through either the Flask test client or a real HTTP server."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from registry.unit_of_work import unit_of_work

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative POSIX path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def declare(files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    return [{"path": p, "size": len(b), "sha256": sha256(b)} for p, b in files.items()]


def make_user(
    registry,
    email: str,
    *,
    institution: str | None = None,
    role: str = "publisher",
    admin: bool = False,
) -> int:
    """A user (optionally a member of ``institution``, created if new); returns its id."""
    from registry.models import Institution, Membership, User

    with registry.sessions() as db, db.begin():
        user = User(
            email=email,
            display_name=email.split("@")[0],
            password_hash="!",
            is_registry_admin=admin,
        )
        db.add(user)
        db.flush()
        if institution is not None:
            inst = db.scalar(select(Institution).where(Institution.slug == institution))
            if inst is None:
                inst = Institution(slug=institution, name=institution.upper())
                db.add(inst)
                db.flush()
            db.add(Membership(user_id=user.id, institution_id=inst.id, role=role))
        return user.id


def make_token(registry, user_id: int, scope: str = "write") -> str:
    from registry.accounts.tokens import create_token
    from registry.models import User

    with unit_of_work(registry.sessions) as db:
        user = db.get(User, user_id)
        _, plaintext = create_token(
            db,
            user,
            name="test",
            scope=scope,
            expires_in_days=30,
            default_days=30,
            max_days=365,
            now=registry.now(),
        )
        return plaintext


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any

    def json(self) -> Any:
        return self.body


class UploadApi:
    """The upload API over a Flask test client (``client``) or a live server (``url``)."""

    def __init__(self, token: str, *, client=None, url: str | None = None) -> None:
        self.token, self.client, self.url = token, client, url
        self.http = requests.Session() if url else None

    def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        headers = {**bearer(self.token), **kwargs.pop("headers", {})}
        if self.client is not None:
            r = self.client.open(path, method=method, headers=headers, **kwargs)
            body = r.get_json(silent=True) if r.data else None
            return Reply(r.status_code, r.headers, body)
        assert self.http is not None
        if "json" not in kwargs and "data" not in kwargs:
            kwargs["data"] = b""
        r = self.http.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)
        try:
            body = r.json() if r.content else None
        except ValueError:
            body = None
        return Reply(r.status_code, r.headers, body)

    def open(self, repo: str, files: Mapping[str, bytes], **fields: Any) -> Reply:
        return self.call("POST", "/api/v1/uploads", json={"repo": repo, "files": declare(files),
                                                          **fields})  # fmt: skip

    def put(self, session: dict[str, Any], path: str, data: bytes, start: int = 0,
            total: int | None = None) -> Reply:  # fmt: skip
        url = next(f["upload_url"] for f in session["files"] if f["path"] == path)
        total = len(data) + start if total is None else total
        headers = {"Content-Range": f"bytes {start}-{start + len(data) - 1}/{total}",
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        return self.call("PUT", url, data=data, headers=headers)

    def send_all(self, session: dict[str, Any], files: Mapping[str, bytes], chunk: int = 0) -> None:
        """Send every incomplete file (in chunks of ``chunk`` bytes when given)."""
        for entry in session["files"]:
            if entry["complete"]:
                continue
            data = files[entry["path"]]
            step = chunk or len(data)
            for start in range(entry["received"], len(data), step):
                reply = self.put(session, entry["path"], data[start : start + step], start,
                                 len(data))  # fmt: skip
                assert reply.status == 200, reply.body

    def commit(self, session_id: str, **body: Any) -> Reply:
        return self.call("POST", f"/api/v1/uploads/{session_id}/commit", json=body)

    def session(self, session_id: str) -> Reply:
        return self.call("GET", f"/api/v1/uploads/{session_id}")

    def publish(self, repo: str, files: Mapping[str, bytes], **fields: Any) -> Reply:
        """Open, send everything, commit; returns the commit reply."""
        opened = self.open(repo, files, **fields)
        assert opened.status == 201, opened.body
        self.send_all(opened.body, files)
        return self.commit(opened.body["id"])
