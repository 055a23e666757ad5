"""Model cards: ``README.md`` with Hugging Face style YAML front matter."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import yaml

CARD_PATH = "README.md"
REQUIRED_CARD_FIELDS: tuple[str, ...] = (
    "license",
    "base_model",
    "datasets",
    "access_tier",
    "dua",
    "intended_use",
    "out_of_scope_use",
    "limitations",
    "training_data",
    "evaluation",
)
# Fields that name things (a licence id, a repo, a tier) rather than describe them.
_STRING_FIELDS = ("license", "access_tier", "dua")
_STRING_OR_LIST_FIELDS = ("base_model", "datasets")
MAX_FRONT_MATTER_CHARS = 256 * 1024
# YAML aliases let a small block expand enormously once stored as JSON; cap the expansion.
MAX_CARD_DATA_UNITS = 1_000_000


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """Split ``text`` into (front matter, body, first front-matter line number), or None."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first == len(lines) or lines[first].rstrip() != "---":
        return None
    for index in range(first + 1, len(lines)):
        if lines[index].rstrip() == "---":
            return "".join(lines[first + 1 : index]), "".join(lines[index + 1 :]), first + 2
    return None


def parse_card(text: str) -> tuple[dict[str, Any], str, list[str]]:
    """Parse a model card into (front matter, body, reasons it is not acceptable)."""
    split = split_front_matter(text)
    if split is None:
        return {}, text, [_no_front_matter(text)]
    front, body, first_line = split
    if len(front) > MAX_FRONT_MATTER_CHARS:
        limit = MAX_FRONT_MATTER_CHARS
        return {}, body, [f"front matter is {len(front)} characters; the limit is {limit}"]
    try:
        loaded = yaml.safe_load(front)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + first_line}" if mark is not None else ""
        return {}, body, [f"front matter is not valid YAML{where}: {_printable(exc.problem)}"]
    # PyYAML's safe constructors raise ValueError, KeyError, AttributeError... on crafted
    # scalars such as "!!int abc" or "2024-13-45"; every one of them is bad input here.
    except Exception as exc:
        return {}, body, [f"front matter is not valid YAML: {_printable(str(exc)) or 'error'}"]
    if not isinstance(loaded, dict):
        kind = "empty" if loaded is None else f"a YAML {type(loaded).__name__}"
        return {}, body, [f"front matter is {kind}; it must be a mapping of field: value"]
    converter = _JsonConverter()
    data = converter.convert(loaded)
    if converter.reasons:
        return {}, body, converter.reasons
    return data, body, _check_required(data)


def _printable(text: str | None, limit: int = 200) -> str:
    return "".join(c if c.isprintable() else " " for c in (text or ""))[:limit]


def _no_front_matter(text: str) -> str:
    fields = ", ".join(REQUIRED_CARD_FIELDS)
    stripped = text.lstrip("\ufeff \t\r\n")
    detail = (
        "is missing the closing '---' line of its front matter"
        if stripped.startswith("---")
        else "has no YAML front matter"
    )
    return (
        f"{detail}; start the file with a '---' line, the card fields "
        f"({fields}) as YAML, and another '---' line"
    )


class _JsonConverter:
    """Copies YAML data into JSON-compatible values, refusing what JSON cannot store."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self._used = 0
        self._open: set[int] = set()  # containers being copied, to catch alias cycles

    def convert(self, value: Any) -> Any:
        self._used += 1 + (len(value) if isinstance(value, str) else 0)
        if self._used > MAX_CARD_DATA_UNITS or len(self._open) > 100:
            self._refuse("front matter expands to too much data (YAML aliases or deep nesting)")
            return None
        if isinstance(value, (dict, list, tuple, set)):
            if id(value) in self._open:
                self._refuse("front matter contains itself through a YAML alias")
                return None
            self._open.add(id(value))
            try:
                return self._convert_container(value)
            finally:
                self._open.discard(id(value))
        if isinstance(value, float) and not math.isfinite(value):
            self._refuse(f"front matter has a non-finite number ({value}); quote it as text")
            return None
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, bytes):
            self._refuse("front matter has binary (!!binary) data; use text")
            return None
        return value

    def _convert_container(
        self, value: dict[Any, Any] | list[Any] | tuple[Any, ...] | set[Any]
    ) -> Any:
        if isinstance(value, dict):
            return {_key(key): self.convert(item) for key, item in value.items()}
        items = sorted(value, key=repr) if isinstance(value, set) else value
        return [self.convert(item) for item in items]

    def _refuse(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _check_required(data: dict[str, Any]) -> list[str]:
    reasons: list[str] = []
    for field in REQUIRED_CARD_FIELDS:
        if field not in data:
            reasons.append(f"model card front matter is missing the required field '{field}'")
        elif _is_empty(data[field]):
            reasons.append(f"model card field '{field}' is empty")
        elif field in _STRING_FIELDS and not isinstance(data[field], str):
            reasons.append(f"model card field '{field}' must be a single text value")
        elif field in _STRING_OR_LIST_FIELDS and not _is_names(data[field]):
            reasons.append(f"model card field '{field}' must be a name or a list of names")
    return reasons


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, dict)) and not value)


def _is_names(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
