"""A corpus of crafted bad uploads through the real upload API: each is refused with a 4xx
naming the file and the problem; the server stays healthy, nothing becomes visible and gc
leaves no blob behind."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.unit_of_work import unit_of_work
from tests.registry.publishing_helpers import (
    UploadApi,
    declare,
    folder_files,
    make_token,
    make_user,
)

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
MAX_FILE_SIZE = 8 * 1024 * 1024


def st(header: dict | bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file from a header (dict or raw bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def tensor(dtype: str = "F32", shape: list[int] | None = None, offsets=(0, 16)) -> dict:
    return {"dtype": dtype, "shape": shape or [4], "data_offsets": list(offsets)}


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable[[dict[str, bytes]], dict[str, bytes]]
    path: str  # the file the message must name
    words: tuple[str, ...]  # each must appear (case-insensitively) in the reason
    declared: Callable[[list[dict]], list[dict]] | None = None  # tamper with declarations
    send: Callable[[dict[str, bytes]], dict[str, bytes]] | None = None  # bytes actually sent


def weights(data: bytes, path: str = WEIGHTS) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda files: {**files, path: data}


def without(path: str) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda files: {p: b for p, b in files.items() if p != path}


def with_card(text: str) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda files: {**files, "README.md": text.encode()}


def index_with(**components) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    def change(files: dict[str, bytes]) -> dict[str, bytes]:
        index = json.loads(files["model_index.json"])
        index.update(components)
        return {**files, "model_index.json": json.dumps(index).encode()}

    return change


def _truncated(files: dict[str, bytes]) -> dict[str, bytes]:
    return {**files, WEIGHTS: files[WEIGHTS][: len(files[WEIGHTS]) // 2]}


NOTES = b"Training notes for this variant only.\n" * 1000


def _short_send(files: dict[str, bytes]) -> dict[str, bytes]:
    return {**files, "notes.txt": NOTES[:-100]}


def _wrong_sha(decls: list[dict]) -> list[dict]:
    return [{**d, "sha256": "0" * 64} if d["path"] == "unet/config.json" else d for d in decls]


GOOD = {"w": tensor()}
CASES = [
    Case("header shorter than 8 bytes", weights(b"\x01\x02"), WEIGHTS, ("8",)),
    Case("header length past end", weights(st(GOOD, bytes(16), length=10_000)), WEIGHTS,
         ("header",)),
    Case("header length over limit", weights(st(b"{}", length=200_000_000)), WEIGHTS, ("header",)),
    Case("header not JSON", weights(st(b"{not json", bytes(16))), WEIGHTS, ("json",)),
    Case("header is a JSON array", weights(st(b"[1, 2]", bytes(16))), WEIGHTS, ("object",)),
    Case("leading whitespace", weights(st(b" " + json.dumps(GOOD).encode(), bytes(16))), WEIGHTS,
         ("whitespace",)),
    Case("duplicate tensor names",
         weights(st(b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, '
                    b'"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}}', bytes(32))),
         WEIGHTS, ("more than once",)),
    Case("unknown dtype", weights(st({"w": tensor("F13")}, bytes(16))), WEIGHTS, ("dtype",)),
    Case("gap between tensors",
         weights(st({"a": tensor(offsets=(0, 16)), "b": tensor(offsets=(20, 36))}, bytes(36))),
         WEIGHTS, ("offset",)),
    Case("overlapping tensors",
         weights(st({"a": tensor(offsets=(0, 16)), "b": tensor(offsets=(8, 24))}, bytes(24))),
         WEIGHTS, ("offset",)),
    Case("offsets past the data", weights(st({"w": tensor(offsets=(0, 64))}, bytes(16))), WEIGHTS,
         ("data",)),
    Case("shape does not match bytes", weights(st({"w": tensor(shape=[5])}, bytes(16))), WEIGHTS,
         ("shape",)),
    Case("integer-overflowing shape",
         weights(st({"w": tensor(shape=[2**62, 2**62, 16], offsets=(0, 16))}, bytes(16))),
         WEIGHTS, ("overflow",)),
    Case("negative dimension", weights(st({"w": tensor(shape=[-4])}, bytes(16))), WEIGHTS,
         ("shape",)),
    Case("trailing bytes after the data", weights(st(GOOD, bytes(20))), WEIGHTS, ("byte",)),
    Case("NaN in the header",
         weights(st(b'{"__metadata__": {"x": NaN}, "w": {"dtype": "F32", "shape": [4], '
                    b'"data_offsets": [0, 16]}}', bytes(16))), WEIGHTS, ("nan",)),
    Case("truncated weights file", _truncated, WEIGHTS, ("data",)),
    Case("zero-byte weights", weights(b""), WEIGHTS, ("empty",)),
    Case("pickle renamed to .safetensors",
         weights(pickle.dumps({"w": list(range(64))}, protocol=4)), WEIGHTS, ("pickle",)),
    Case("pickle weights (.bin)", weights(pickle.dumps([1, 2]), "unet/diffusion_pytorch_model.bin"),
         "unet/diffusion_pytorch_model.bin", ("pickle",)),
    Case("python code file", weights(b"import os\n", "pipeline.py"), "pipeline.py", ("code",)),
    Case("path escaping the folder", weights(b"{}", "../evil.json"), "../evil.json", ("..",)),
    Case("absolute path", weights(b"{}", "/etc/evil.json"), "/etc/evil.json", ("absolute",)),
    Case("backslash path", weights(b"{}", "unet\\evil.json"), "unet\\evil.json", ("backslash",)),
    Case("hidden file", weights(b"{}", ".hidden/config.json"), ".hidden/config.json", ("hidden",)),
    Case("control character in path", weights(b"{}", "unet/a\x07.json"), "unet/a\x07.json",
         ("control",)),
    Case("card without front matter", with_card("# Just a heading\n\nNo YAML here.\n"),
         "README.md", ("front matter",)),
    Case("card missing required fields", with_card("---\nlicense: mit\n---\n# Card\n"),
         "README.md", ("intended_use",)),
    Case("model_index.json names a missing component", index_with(refiner=["diffusers",
         "UNet2DConditionModel"]), "model_index.json", ("refiner",)),  # fmt: skip
    Case("model_index.json is not JSON", weights(b"{'_class_name': 1", "model_index.json"),
         "model_index.json", ("json",)),
    Case("component folder without weights", without("vae/diffusion_pytorch_model.safetensors"),
         "vae/", ("safetensors",)),
    Case("oversized file", weights(b"x" * (MAX_FILE_SIZE + 1), "unet/huge.json"), "unet/huge.json",
         ("limit",)),
    Case("wrong declared sha256", lambda files: files, "unet/config.json", ("sha256",),
         declared=_wrong_sha),
    Case("truncated upload", weights(NOTES, "notes.txt"), "notes.txt", ("arrived",),
         send=_short_send),
]  # fmt: skip


@pytest.fixture
def settings(settings):
    import dataclasses

    return dataclasses.replace(settings, max_file_size=MAX_FILE_SIZE)


def _attempt(api: UploadApi, repo: str, files: dict[str, bytes], case: Case):
    """Open, send and commit like a client would; return the first refusal."""
    decls = declare(files)
    if case.declared is not None:
        decls = case.declared(decls)
    opened = api.call("POST", "/api/v1/uploads", json={"repo": repo, "tier": "open",
                                                       "files": decls})  # fmt: skip
    if opened.status != 201:
        return opened
    sent = case.send(files) if case.send is not None else files
    for entry in opened.body["files"]:
        if entry["complete"]:
            continue
        data = sent[entry["path"]]
        if not data:
            continue
        reply = api.put(opened.body, entry["path"], data, 0, entry["size"])
        if reply.status != 200:
            return reply
    return api.commit(opened.body["id"])


def test_bad_uploads_are_refused_and_leave_nothing_behind(
    registry, client, tiny_model_dir: Path, subtests
):
    user = make_user(registry, "pub@mgh.org", institution="mgh")
    api = UploadApi(make_token(registry, user), client=client)
    good = folder_files(tiny_model_dir)
    assert len(CASES) >= 25
    for number, case in enumerate(CASES):
        with subtests.test(case.name):
            repo = f"mgh/bad-{number}"
            reply = _attempt(api, repo, case.change(dict(good)), case)
            assert 400 <= reply.status < 500, (case.name, reply.status, reply.body)
            body = reply.body
            assert body["code"] and body["error"]
            problems = body.get("problems") or body.get("incomplete") or []
            named = [p for p in problems if p.get("field", p.get("path")) == case.path]
            text = " ".join(p.get("problem", "") for p in named) or body["error"]
            assert case.path in body["error"] or named, body
            for word in case.words:
                assert word.lower() in text.lower(), (case.name, word, body)
            assert client.get(f"/api/models/{repo}").status_code == 404
            assert client.get(f"/{repo}/resolve/main/{WEIGHTS}").status_code == 404
            assert client.get("/api/v1/health").status_code == 200

    assert client.get("/api/models").get_json() == []
    from registry.publishing.gc import collect_garbage

    # Sessions left open (the incomplete one) expire; gc then takes every byte.
    registry.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    with unit_of_work(registry.sessions) as db:
        collect_garbage(db, registry.blobs, now=registry.now(), grace=dt.timedelta(hours=1))
    assert list(registry.blobs.iter_blobs()) == []
    assert list(registry.blobs.iter_staging()) == []
