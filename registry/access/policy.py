"""Loading and checking ``policies/*.yaml``: trainings, DUAs and access tiers.

A malformed file stops start-up with a ``PolicyError`` naming the file, the key and the
problem, e.g. ``access.yaml: tiers.credentialed.require[2]: unknown training 'citi-x'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from registry.config import ConfigError

ID_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,99}\Z")
PLAIN_REQUIREMENTS = frozenset(
    {
        "authenticated",
        "email-verified",
        "terms-accepted",
        "credentialed",
        "dua-signed",
        "access-request-accepted",
    }
)
# Every tier above open needs a proven address, whether or not its file says so.
IMPLIED_REQUIREMENT = "email-verified"
TOP_KEYS = {"trainings", "duas", "tiers", "datasets"}
TRAINING_KEYS = {"title", "valid_days", "description"}
DUA_KEYS = {"title", "text", "url"}
TIER_KEYS = {"description", "extends", "require", "dua", "review", "review_exempt"}
DATASET_KEYS = {"title", "tier", "dua"}
ANY_TIER = "any"
# Policy files read by their own modules (registry/publishing/evaluation_policy.py).
OTHER_FILES = frozenset({"evaluation.yaml"})


class PolicyError(ConfigError):
    """A policy file is malformed; the message names the file, the key and the problem."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"policy file {file}: {key}: {problem}")
        self.file, self.key, self.problem = file, key, problem


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    id: str
    title: str
    valid_days: int
    description: str = ""


@dataclasses.dataclass(frozen=True)
class DuaSpec:
    id: str
    title: str
    text: str
    sha256: str  # of the UTF-8 text; a signature records which text was signed
    url: str = ""


@dataclasses.dataclass(frozen=True)
class TierSpec:
    name: str
    requires: tuple[str, ...]  # inherited requirements first, without duplicates
    dua: str | None
    review_required: bool
    description: str = ""
    # Institutions (slugs) whose versions of this tier are published without review.
    review_exempt: frozenset[str] = frozenset()

    def reviewed_for(self, institution: str | None) -> bool:
        return self.review_required and (
            institution is None or institution not in self.review_exempt
        )


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The least a model trained on this data set must demand (``tier`` None: any tier)."""

    id: str
    title: str
    tier: str | None
    dua: str | None
    file: str = ""


@dataclasses.dataclass(frozen=True)
class PolicySet:
    trainings: dict[str, TrainingSpec]
    duas: dict[str, DuaSpec]
    tiers: dict[str, TierSpec]
    datasets: dict[str, DatasetSpec] = dataclasses.field(default_factory=dict)


def load_policies(folder: Path) -> PolicySet:
    """Read every ``*.yaml`` in ``folder`` (sorted) and check it; raise ``PolicyError``."""
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    files = [path for path in files if path.name not in OTHER_FILES]
    if not files:
        raise PolicyError(str(folder), "(folder)", "no *.yaml policy files found")
    raw: dict[str, dict[str, tuple[str, Any]]] = {key: {} for key in TOP_KEYS}
    for path in files:
        document = _read_yaml(path)
        for section, entries in document.items():
            if not isinstance(entries, dict):
                raise PolicyError(path.name, section, "must be a mapping of id to settings")
            for ident, body in entries.items():
                if ident in raw[section]:
                    first = raw[section][ident][0]
                    raise PolicyError(
                        path.name, f"{section}.{ident}", f"already declared in {first}"
                    )
                raw[section][ident] = (path.name, body)
    trainings = {i: _training(f, i, b) for i, (f, b) in raw["trainings"].items()}
    duas = {i: _dua(folder, f, i, b) for i, (f, b) in raw["duas"].items()}
    tiers = _tiers(raw["tiers"], trainings, duas)
    if not tiers:
        raise PolicyError(files[0].name, "tiers", "no access tiers declared")
    datasets = {i: _dataset(f, i, b, tiers, duas) for i, (f, b) in raw["datasets"].items()}
    return PolicySet(trainings=trainings, duas=duas, tiers=tiers, datasets=datasets)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(syntax)"
        problem = getattr(error, "problem", None) or str(error)
        raise PolicyError(path.name, where, f"invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(path.name, "(file)", f"cannot read: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PolicyError(path.name, "(top level)", "must be a mapping with trainings/duas/tiers")
    for key in document:
        if key not in TOP_KEYS:
            raise PolicyError(path.name, str(key), f"unknown section; use {sorted(TOP_KEYS)}")
    return document


def _mapping(file: str, key: str, body: Any, allowed: set[str]) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise PolicyError(file, key, "must be a mapping")
    for name in body:
        if name not in allowed:
            raise PolicyError(file, f"{key}.{name}", f"unknown key; use one of {sorted(allowed)}")
    return body


def _text(file: str, key: str, value: Any, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(file, key, "must be a non-empty string")
    return value.strip()


def _check_id(file: str, key: str, ident: Any) -> str:
    if not isinstance(ident, str) or not ID_RE.match(ident):
        raise PolicyError(file, key, "ids use lower-case letters, digits, '.' and '-'")
    return ident


def _training(file: str, ident: str, body: Any) -> TrainingSpec:
    key = f"trainings.{ident}"
    _check_id(file, key, ident)
    body = _mapping(file, key, body, TRAINING_KEYS)
    days = body.get("valid_days")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise PolicyError(file, f"{key}.valid_days", "must be a positive number of days")
    return TrainingSpec(
        id=ident,
        title=_text(file, f"{key}.title", body.get("title")),
        valid_days=days,
        description=_text(file, f"{key}.description", body.get("description"), required=False),
    )


def _dua(folder: Path, file: str, ident: str, body: Any) -> DuaSpec:
    key = f"duas.{ident}"
    _check_id(file, key, ident)
    body = _mapping(file, key, body, DUA_KEYS)
    rel = _text(file, f"{key}.text", body.get("text"))
    path = (folder / rel).resolve()
    if folder.resolve() not in path.parents:
        raise PolicyError(file, f"{key}.text", f"{rel!r} must be a file inside {folder}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(file, f"{key}.text", f"cannot read {rel!r}: {error}") from None
    if not text.strip():
        raise PolicyError(file, f"{key}.text", f"{rel!r} is empty")
    url = _text(file, f"{key}.url", body.get("url"), required=False)
    if url and not url.startswith("https://"):
        raise PolicyError(file, f"{key}.url", "must be an https:// URL")
    return DuaSpec(
        id=ident,
        title=_text(file, f"{key}.title", body.get("title")),
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        url=url,
    )


def _dataset(
    file: str, ident: str, body: Any, tiers: dict[str, TierSpec], duas: dict[str, DuaSpec]
) -> DatasetSpec:
    key = f"datasets.{ident}"
    _check_id(file, key, ident)
    body = _mapping(file, key, body, DATASET_KEYS)
    tier = body.get("tier")
    if tier != ANY_TIER and tier not in tiers:
        raise PolicyError(
            file, f"{key}.tier", f"must be '{ANY_TIER}' or a declared tier ({sorted(tiers)})"
        )
    dua = body.get("dua")
    if dua is not None and dua not in duas:
        raise PolicyError(file, f"{key}.dua", f"unknown DUA {dua!r} (declared: {sorted(duas)})")
    return DatasetSpec(
        id=ident,
        title=_text(file, f"{key}.title", body.get("title"), required=False) or ident,
        tier=None if tier == ANY_TIER else tier,
        dua=dua,
        file=file,
    )


def _tiers(
    raw: dict[str, tuple[str, Any]],
    trainings: dict[str, TrainingSpec],
    duas: dict[str, DuaSpec],
) -> dict[str, TierSpec]:
    bodies: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, (file, body) in raw.items():
        key = f"tiers.{name}"
        _check_id(file, key, name)
        bodies[name] = (file, _mapping(file, key, body, TIER_KEYS))
    resolved: dict[str, TierSpec] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> TierSpec:
        if name in resolved:
            return resolved[name]
        file, body = bodies[name]
        key = f"tiers.{name}"
        parent: TierSpec | None = None
        if "extends" in body:
            base = body["extends"]
            if base not in bodies:
                raise PolicyError(file, f"{key}.extends", f"unknown tier {base!r}")
            if base in chain:
                raise PolicyError(file, f"{key}.extends", "tiers extend each other in a cycle")
            parent = resolve(base, (*chain, name))
        own = _requirements(file, key, body.get("require"), trainings, duas)
        requires = _with_verified_email(
            tuple(dict.fromkeys([*(parent.requires if parent else ()), *own]))
        )
        dua = body.get("dua", parent.dua if parent else None)
        if dua is not None and dua not in duas:
            raise PolicyError(file, f"{key}.dua", f"unknown DUA {dua!r} (declared: {sorted(duas)})")
        if "dua-signed" in requires and dua is None:
            raise PolicyError(file, f"{key}.require", "'dua-signed' needs a 'dua' for the tier")
        # Every tier is reviewed (open included) unless its policy says ``review: false``.
        review = body.get("review", True)
        if not isinstance(review, bool):
            raise PolicyError(file, f"{key}.review", "must be true or false")
        exempt = body.get("review_exempt", [])
        if not isinstance(exempt, list) or not all(isinstance(e, str) and e for e in exempt):
            raise PolicyError(file, f"{key}.review_exempt", "must be a list of institution slugs")
        spec = TierSpec(
            name=name,
            requires=requires,
            dua=dua,
            review_required=review,
            description=_text(file, f"{key}.description", body.get("description"), required=False),
            review_exempt=frozenset(exempt),
        )
        resolved[name] = spec
        return spec

    for name in bodies:
        resolve(name, ())
    return {name: resolved[name] for name in bodies}


def _with_verified_email(requires: tuple[str, ...]) -> tuple[str, ...]:
    """``requires`` with ``email-verified`` (after ``authenticated``) unless it is empty."""
    if not requires or IMPLIED_REQUIREMENT in requires:
        return requires
    at = requires.index("authenticated") + 1 if "authenticated" in requires else 0
    return (*requires[:at], IMPLIED_REQUIREMENT, *requires[at:])


def _requirements(
    file: str,
    key: str,
    value: Any,
    trainings: dict[str, TrainingSpec],
    duas: dict[str, DuaSpec],
) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(file, f"{key}.require", "must be a list of requirements")
    out = []
    for index, item in enumerate(value):
        where = f"{key}.require[{index}]"
        if not isinstance(item, str):
            raise PolicyError(file, where, "must be a string")
        kind, _, arg = item.partition(":")
        if item in PLAIN_REQUIREMENTS:
            pass
        elif kind == "training" and arg:
            if arg not in trainings:
                raise PolicyError(
                    file, where, f"unknown training {arg!r} (declared: {sorted(trainings)})"
                )
        elif kind == "dua" and arg:
            if arg not in duas:
                raise PolicyError(file, where, f"unknown DUA {arg!r} (declared: {sorted(duas)})")
        else:
            raise PolicyError(
                file,
                where,
                f"unknown requirement {item!r}; use {sorted(PLAIN_REQUIREMENTS)}, "
                "'training:<id>' or 'dua:<id>'",
            )
        out.append(item)
    return out
