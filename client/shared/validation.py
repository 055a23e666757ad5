"""Validation of a version's files before commit: every problem at once, with file and reason.

Used by the server at commit (through ``registry.publishing.validation``), by
``registry-server import-folder`` and by ``registry-client push`` before any byte is sent.
Only the standard library, PyYAML and ``client.shared`` are imported here, so the registry
server and the client run the same checks without torch, numpy or the registry.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import os
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from client.shared.model_card import CARD_PATH, REQUIRED_CARD_FIELDS, parse_card
from client.shared.safetensors_header import (
    MAX_HEADER_SIZE,
    SafetensorsHeaderError,
    quote,
    read_exactly,
    read_header,
    sniff_foreign_format,
)

__all__ = [
    "ALLOWED_LIBRARIES",
    "ALLOWED_NAMES",
    "ALLOWED_SUFFIXES",
    "CODE_SUFFIXES",
    "MAX_CARD_SIZE",
    "MAX_COMPONENT_BYTES",
    "MAX_JSON_SIZE",
    "MAX_PATH_BYTES",
    "PICKLE_SUFFIXES",
    "REQUIRED_CARD_FIELDS",
    "WEIGHTS_SUFFIX",
    "FileEntry",
    "Problem",
    "check_file_kind",
    "check_layout",
    "check_path",
    "check_safetensors",
    "folder_entries",
    "parse_model_card",
    "validate_folder",
    "validate_version",
]

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024
MAX_JSON_SIZE = 64 * 1024 * 1024
MAX_CARD_SIZE = 5 * 1024 * 1024

WEIGHTS_SUFFIX = ".safetensors"
# Deny by default: a suffix or name not listed here is refused.
ALLOWED_SUFFIXES = (WEIGHTS_SUFFIX, ".json", ".txt", ".md", ".png", ".jpg", ".jpeg")
# Sentencepiece vocabularies (T5-style tokenizers) and licence files without a suffix.
ALLOWED_NAMES = ("spiece.model", "tokenizer.model", "sentencepiece.bpe.model", "LICENSE", "NOTICE")
PICKLE_SUFFIXES = (
    ".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".h5",
    ".hdf5", ".keras",
)  # fmt: skip
CODE_SUFFIXES = (
    ".py", ".pyc", ".pyo", ".pyd", ".pyx", ".so", ".dll", ".dylib", ".exe", ".sh", ".bash",
    ".bat", ".cmd", ".ps1", ".js", ".mjs", ".ipynb", ".jar", ".whl", ".egg",
)  # fmt: skip
ALLOWED_LIBRARIES = ("diffusers", "transformers")
_IMAGE_SIGNATURES = {
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".jpeg": b"\xff\xd8\xff",
}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in range(10)
}
_WINDOWS_FORBIDDEN = set('<>:"|?*')
_INVISIBLE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")
_CONFIG_NAMES = (
    "model_index.json", "config.json", "scheduler_config.json", "preprocessor_config.json",
    "tokenizer_config.json",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a version cannot be accepted; ``path`` is "" for version-wide problems."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The problem in the registry's one ``{field, problem}`` shape: ``field`` is the file's
        raw path ("" for the version as a whole; escape it before printing)."""
        return {"field": self.path, "problem": self.reason}

    def __str__(self) -> str:
        return f"{quote(self.path, 200) if self.path else '(version)'}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A file of a version: its path, size and a way to open its bytes from the start."""

    path: str
    size: int
    open: Callable[[], BinaryIO]


def check_path(path: str) -> list[Problem]:
    """Refuse paths that are not safe, portable, relative POSIX paths inside the version."""
    if not path:
        return [Problem(path, "a file path is empty")]
    label = f"path {quote(path)}"
    if "\x00" in path:
        return [Problem(path, f"{label} contains a NUL byte")]
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return [Problem(path, f"{label} is not valid UTF-8")]
    reasons: list[str] = []
    invisible = [c for c in path if unicodedata.category(c) in _INVISIBLE_CATEGORIES]
    if invisible:
        reasons.append(f"contains control or invisible character U+{ord(invisible[0]):04X}")
    if "\\" in path:
        reasons.append("contains a backslash; use '/' to separate folders")
    if path.startswith("/"):
        reasons.append("is absolute; give it relative to the version's root folder")
    elif path.endswith("/") or "//" in path:
        reasons.append("has an empty component ('//' or a trailing '/')")
    for part in filter(None, path.split("/")):
        reasons.extend(_component_reasons(part))
    if len(encoded) > MAX_PATH_BYTES:
        reasons.append(f"is {len(encoded)} bytes long; the limit is {MAX_PATH_BYTES}")
    return [Problem(path, f"{label} {reason}") for reason in dict.fromkeys(reasons)]


def _component_reasons(part: str) -> Iterable[str]:
    if part == "..":
        yield "contains a '..' component, which could escape the download folder"
    elif part == ".":
        yield "contains a '.' component"
    elif part.startswith("."):
        yield f"has the hidden component {quote(part)}; hidden files and folders are refused"
    size = len(part.encode("utf-8"))
    if size > MAX_COMPONENT_BYTES:
        yield f"has a component of {size} bytes; the limit is {MAX_COMPONENT_BYTES}"
    if part not in (".", "..") and (
        _WINDOWS_FORBIDDEN & set(part)
        or part[-1] in ". "
        or part.split(".")[0].upper() in _WINDOWS_RESERVED
    ):
        yield (
            f"has component {quote(part)}, which is not a valid file name on Windows "
            '(reserved name, trailing dot or space, or one of <>:"|?*)'
        )


def check_file_kind(path: str) -> list[Problem]:
    """Refuse every file type but safetensors weights, JSON, text, markdown and images."""
    name = path.rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    if suffix in ALLOWED_SUFFIXES or name in ALLOWED_NAMES:
        return []
    if suffix in PICKLE_SUFFIXES:
        reason = (
            f"'{suffix}' files are pickle-based or embed code, and can run code when loaded; "
            "save the weights with safetensors (save_pretrained(..., safe_serialization=True))"
        )
    elif suffix in CODE_SUFFIXES:
        reason = (
            f"'{suffix}' files are code; custom code is refused, "
            "only standard diffusers and transformers components are served"
        )
    else:
        shown = f"'{suffix}' files are" if suffix else "files without a suffix are"
        reason = (
            f"{shown} not accepted; allowed: {', '.join(ALLOWED_SUFFIXES)} "
            f"and {', '.join(ALLOWED_NAMES)}"
        )
    return [Problem(path, reason)]


def check_safetensors(entry: FileEntry, *, max_header_size: int = MAX_HEADER_SIZE) -> list[Problem]:
    """Check a safetensors file's header, reading only its first 8 + header-length bytes."""
    try:
        stream = entry.open()
    except OSError as exc:
        return [Problem(entry.path, f"could not be read: {exc.strerror or exc}")]
    try:
        read_header(stream, entry.size, max_header_size=max_header_size)
    except SafetensorsHeaderError as exc:
        return [Problem(entry.path, reason) for reason in exc.reasons]
    except OSError as exc:
        return [Problem(entry.path, f"could not be read: {exc.strerror or exc}")]
    finally:
        stream.close()
    return []


def parse_model_card(text: str) -> tuple[dict[str, Any], str, list[Problem]]:
    """Split a model card into (front matter, markdown body, problems with the card)."""
    data, body, reasons = parse_card(text)
    return data, body, [Problem(CARD_PATH, reason) for reason in reasons]


def check_layout(entries: Mapping[str, FileEntry]) -> list[Problem]:
    """Check that every JSON file parses and the diffusers layout is complete."""
    problems: list[Problem] = []
    documents: dict[str, Any] = {}
    for path in sorted(entries):
        if path.lower().endswith(".json"):
            value, reason = _load_json(entries[path])
            if reason is not None:
                problems.append(Problem(path, reason))
            else:
                documents[path] = value
    if "model_index.json" not in entries:
        if not any(path.lower().endswith(WEIGHTS_SUFFIX) for path in entries):
            problems.append(Problem("", "the version has no .safetensors weights"))
        return problems
    index = documents.get("model_index.json")
    if index is None:
        return problems  # its parse error is already reported
    if not isinstance(index.get("_class_name"), str):
        problems.append(
            Problem(
                "model_index.json",
                "'_class_name' must name a diffusers pipeline class; custom pipeline code "
                "is refused",
            )
        )
    for name, value in index.items():
        if name.startswith("_") or not _looks_like_component(value):
            continue
        if value == [None, None]:
            continue
        problems.extend(_check_component(name, value, entries))
    problems.extend(_check_shard_indexes(entries, documents))
    return problems


def _load_json(entry: FileEntry) -> tuple[Any, str | None]:
    if entry.size > MAX_JSON_SIZE:
        return None, f"is {entry.size} bytes; JSON files are limited to {MAX_JSON_SIZE} bytes"
    raw, reason = _read_all(entry, MAX_JSON_SIZE)
    if reason is not None:
        return None, reason
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        return None, "is not valid UTF-8, so it cannot be JSON"
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON: {exc}"
    except (ValueError, RecursionError) as exc:
        return None, f"is not valid JSON: {str(exc) or 'it nests too deeply'}"
    name = entry.path.rsplit("/", 1)[-1]
    if name in _CONFIG_NAMES and not isinstance(value, dict):
        return None, "must contain a JSON object"
    return value, None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {quote(key)} appears twice in one object")
        result[key] = value
    return result


def _read_all(entry: FileEntry, limit: int) -> tuple[bytes, str | None]:
    try:
        with entry.open() as stream:
            raw = read_exactly(stream, limit + 1)
    except OSError as exc:
        return b"", f"could not be read: {exc.strerror or exc}"
    if len(raw) > limit:
        return b"", f"is larger than the {limit}-byte limit for this kind of file"
    return raw, None


def _looks_like_component(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(item is None or isinstance(item, str) for item in value)
    )


def _check_component(
    name: str, value: list[Any], entries: Mapping[str, FileEntry]
) -> list[Problem]:
    library, class_name = value
    where = "model_index.json"
    label = f"component {quote(name)}"
    if library is None or class_name is None:
        return [Problem(where, f"{label} must be [library, class] or [null, null]")]
    if "/" in name or check_path(name):
        return [Problem(where, f"{label} is not a safe folder name")]
    if library not in ALLOWED_LIBRARIES:
        allowed = " and ".join(ALLOWED_LIBRARIES)
        return [
            Problem(
                where,
                f"{label} comes from library {quote(library)}; only {allowed} "
                "components are accepted",
            )
        ]
    files = {p[len(name) + 1 :] for p in entries if p.startswith(name + "/")}
    described = f"{label} ({library} {quote(class_name)})"
    if not files:
        return [Problem(where, f"names {described}, but there is no {name}/ folder")]
    needed = _required_files(class_name)
    problems = [
        Problem(f"{name}/{file}", f"is missing; model_index.json names {described}")
        for file in needed
        if file not in files
    ]
    if "Tokenizer" in class_name and not _has_vocabulary(files):
        problems.append(
            Problem(
                f"{name}/",
                f"{described} has no vocabulary files (vocab.json and "
                "merges.txt, tokenizer.json, vocab.txt or a sentencepiece .model)",
            )
        )
    if needed == ("config.json",) and not any(
        "/" not in f and f.lower().endswith(WEIGHTS_SUFFIX) for f in files
    ):
        problems.append(Problem(f"{name}/", f"{described} has no .safetensors weights"))
    return problems


def _required_files(class_name: str) -> tuple[str, ...]:
    if class_name.endswith("Scheduler"):
        return ("scheduler_config.json",)
    if "Tokenizer" in class_name:
        return ()
    if class_name.endswith(("FeatureExtractor", "ImageProcessor", "Processor")):
        return ("preprocessor_config.json",)
    return ("config.json",)


def _has_vocabulary(files: set[str]) -> bool:
    return (
        {"vocab.json", "merges.txt"} <= files
        or bool({"tokenizer.json", "vocab.txt"} & files)
        or any(f.endswith(".model") for f in files)
    )


def _check_shard_indexes(
    entries: Mapping[str, FileEntry], documents: Mapping[str, Any]
) -> list[Problem]:
    problems: list[Problem] = []
    for path, document in documents.items():
        if not path.endswith(WEIGHTS_SUFFIX + ".index.json"):
            continue
        weight_map = document.get("weight_map") if isinstance(document, dict) else None
        if not isinstance(weight_map, dict):
            problems.append(Problem(path, "has no 'weight_map' object"))
            continue
        folder = path.rpartition("/")[0]
        for shard in sorted({str(v) for v in weight_map.values()}):
            target = f"{folder}/{shard}" if folder else shard
            if "/" in shard or not shard.endswith(WEIGHTS_SUFFIX) or target not in entries:
                problems.append(
                    Problem(
                        path,
                        f"weight_map names {quote(shard)}, which is not "
                        "a .safetensors file in this folder",
                    )
                )
    return problems


def validate_version(
    entries: Mapping[str, FileEntry],
    *,
    max_file_size: int | None = None,
    max_header_size: int = MAX_HEADER_SIZE,
) -> tuple[dict[str, Any], list[Problem]]:
    """Run every check on a version's files; return (card data, all problems sorted by path)."""
    problems: list[Problem] = []
    accepted: dict[str, FileEntry] = {}
    for path, entry in entries.items():
        if entry.path != path:  # the mapping's key is the path that gets published
            entry = dataclasses.replace(entry, path=path)
        refused = check_path(path) + check_file_kind(path)
        if entry.size < 0:
            refused.append(Problem(path, f"has a negative size ({entry.size})"))
        elif max_file_size is not None and entry.size > max_file_size:
            refused.append(Problem(path, f"is {entry.size} bytes; the limit is {max_file_size}"))
        problems.extend(refused)
        if not refused:
            accepted[path] = entry
    problems.extend(_check_collisions(accepted))
    for path, entry in accepted.items():
        suffix = os.path.splitext(path)[1].lower()
        if suffix == WEIGHTS_SUFFIX:
            problems.extend(check_safetensors(entry, max_header_size=max_header_size))
        elif suffix != ".json" and path != CARD_PATH:
            problems.extend(_check_signature(entry, suffix))
    problems.extend(check_layout(accepted))
    card_data: dict[str, Any] = {}
    if CARD_PATH in accepted:
        card_data, card_problems = _check_card(accepted[CARD_PATH])
        problems.extend(card_problems)
    elif CARD_PATH not in entries:
        problems.append(
            Problem("", f"the version has no model card: add {CARD_PATH} with YAML front matter")
        )
    return card_data, sorted(problems, key=lambda problem: problem.path)


def _check_collisions(entries: Mapping[str, FileEntry]) -> list[Problem]:
    """Refuse paths that clash on case-insensitive file systems or are also a folder."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    folders = {path.rsplit("/", 1)[0] for path in entries if "/" in path}
    folders |= {
        folder.rsplit("/", i)[0] for folder in folders for i in range(folder.count("/") + 1)
    }
    for path in sorted(entries):
        key = unicodedata.normalize("NFC", path).casefold()
        if key in seen:
            problems.append(
                Problem(
                    path,
                    f"differs from {quote(seen[key])} only by letter case or Unicode "
                    "normalisation; both cannot exist on Windows or macOS",
                )
            )
        seen.setdefault(key, path)
        if path in folders:
            problems.append(Problem(path, "is both a file and a folder in this version"))
    return problems


def _check_signature(entry: FileEntry, suffix: str) -> list[Problem]:
    """Catch pickles and archives under an innocent name, and images that are not images."""
    try:
        with entry.open() as stream:
            prefix = read_exactly(stream, 8)
    except OSError as exc:
        return [Problem(entry.path, f"could not be read: {exc.strerror or exc}")]
    foreign = sniff_foreign_format(prefix)
    if foreign:
        return [Problem(entry.path, f"this is {foreign} under a '{suffix or entry.path}' name")]
    signature = _IMAGE_SIGNATURES.get(suffix)
    if signature and not prefix.startswith(signature):
        return [Problem(entry.path, f"is not a {suffix[1:].upper()} image")]
    return []


def _check_card(entry: FileEntry) -> tuple[dict[str, Any], list[Problem]]:
    raw, reason = _read_all(entry, MAX_CARD_SIZE)
    if reason is not None:
        return {}, [Problem(entry.path, reason)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [Problem(entry.path, f"is not valid UTF-8 text (byte {exc.start})")]
    data, _, problems = parse_model_card(text)
    return data, problems


def folder_entries(root: Path) -> tuple[dict[str, FileEntry], list[Problem]]:
    """List a local folder's files as entries; hidden names are skipped, symlinks refused."""
    if not root.is_dir():
        return {}, [Problem("", f"{quote(str(root))} is not a folder")]
    entries: dict[str, FileEntry] = {}
    problems: list[Problem] = []
    pending = [("", str(root))]
    while pending:
        prefix, folder = pending.pop()
        try:
            with os.scandir(folder) as scan:
                items = sorted(scan, key=lambda item: item.name)
        except OSError as exc:
            problems.append(Problem(prefix.rstrip("/"), f"could not be listed: {exc.strerror}"))
            continue
        for item in items:
            if item.name.startswith("."):
                continue  # .git, .cache/huggingface, .DS_Store: never part of a version
            path = prefix + item.name
            try:
                info = item.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append(Problem(path, f"could not be read: {exc.strerror}"))
                continue
            if stat.S_ISLNK(info.st_mode):
                problems.append(Problem(path, "is a symbolic link; copy the real file in instead"))
            elif stat.S_ISDIR(info.st_mode):
                pending.append((path + "/", item.path))
            elif stat.S_ISREG(info.st_mode):
                opener = functools.partial(_open_regular_file, item.path)
                entries[path] = FileEntry(path, info.st_size, opener)
            else:
                problems.append(Problem(path, "is not a regular file (a device, FIFO or socket)"))
    return entries, problems


def _open_regular_file(path: str) -> BinaryIO:
    """Open for reading, refusing a file swapped for a symlink, FIFO or device since the scan."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "no longer a regular file", path)
    return os.fdopen(fd, "rb")


def validate_folder(
    root: Path, *, max_file_size: int | None = None, max_header_size: int = MAX_HEADER_SIZE
) -> tuple[dict[str, Any], list[Problem]]:
    """Validate a local diffusers folder as it would be published."""
    root = Path(root)
    if not root.is_dir():
        return {}, [Problem("", f"{quote(str(root))} is not a folder")]
    entries, problems = folder_entries(root)
    card_data, found = validate_version(
        entries, max_file_size=max_file_size, max_header_size=max_header_size
    )
    return card_data, sorted(problems + found, key=lambda problem: problem.path)
