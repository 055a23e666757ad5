"""Tier floors: the least access a version may demand, from its data, lineage and bytes.

A version's floor is the strictest of: the tiers its card's ``datasets`` impose
(``policies/datasets.yaml``), its base model's tier, and, for each of its files that other
models already hold, the tier of those models. A file some model of a tier this one meets
already serves is no secret (an open base model's VAE reused by a credentialed fine-tune
may be published openly again); a file only gated models hold keeps their floor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.access.policy import PolicySet
from registry.access.requirements import model_dua
from registry.models import File, Model, Version
from registry.publishing.ledger import LIVE_VERSION_STATES
from registry.publishing.validation import Problem
from registry.repos import services as repos


@dataclasses.dataclass(frozen=True)
class Floor:
    """``tier`` (and ``dua``, when the floor needs that DUA) set by ``source``."""

    tier: str
    dua: str | None
    source: str


@dataclasses.dataclass(frozen=True)
class FloorCheck:
    problems: list[Problem]
    unknown_datasets: list[str]  # named by the card but not declared: the version is reviewed


def meets(policies: PolicySet, tier: str, dua: str | None, floor: Floor) -> bool:
    """Whether a model of ``tier`` requiring ``dua`` demands at least what ``floor`` does."""
    own, least = policies.tiers.get(tier), policies.tiers.get(floor.tier)
    if own is None or least is None:
        return False
    if not set(least.requires) <= set(own.requires):
        return False
    return floor.dua is None or floor.dua == dua


def model_floor(policies: PolicySet, model: Model, source: str) -> Floor:
    """The floor another model sets: its tier, and its DUA when that tier requires one."""
    spec = policies.tiers.get(model.tier)
    needs_dua = spec is not None and "dua-signed" in spec.requires
    return Floor(model.tier, model_dua(policies, model) if needs_dua else None, source)


def check_floor(
    db: Session,
    policies: PolicySet,
    model: Model,
    version: Version,
    files: Iterable[Any],
    card: dict[str, Any],
) -> FloorCheck:
    """Every reason ``version`` of ``model`` is below its floor, and its unknown data sets."""
    dua = model_dua(policies, model)
    problems: list[Problem] = []
    floors, unknown = _dataset_floors(policies, card)
    floors += _lineage_floors(db, policies, model, version, card)
    for floor in floors:
        if not meets(policies, model.tier, dua, floor):
            problems.append(_below(model, dua, floor, ""))
    problems += _shared_file_problems(db, policies, model, dua, list(files))
    return FloorCheck(problems, unknown)


def _below(model: Model, dua: str | None, floor: Floor, path: str) -> Problem:
    needs = f"the '{floor.tier}' tier" + (f" with DUA {floor.dua!r}" if floor.dua else "")
    has = f"'{model.tier}'" + (f" (DUA {dua!r})" if dua else "")
    return Problem(
        path,
        f"{floor.source} requires at least {needs}, but {model.repo_id} is {has}; publish it "
        "as a model of that tier instead",
    )


def _requires(policies: PolicySet, tier: str) -> tuple[str, ...]:
    spec = policies.tiers.get(tier)
    return spec.requires if spec is not None else ()


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def _dataset_floors(policies: PolicySet, card: dict[str, Any]) -> tuple[list[Floor], list[str]]:
    floors, unknown = [], []
    for name in _names(card.get("datasets")):
        spec = policies.datasets.get(name.lower())
        if spec is None:
            unknown.append(name)
        elif spec.tier is not None:
            floors.append(Floor(spec.tier, spec.dua, f"data set {name!r} ({spec.title})"))
    return floors, unknown


def _lineage_floors(
    db: Session, policies: PolicySet, model: Model, version: Version, card: dict[str, Any]
) -> list[Floor]:
    bases: dict[int, tuple[Model, str]] = {}
    if version.base_version is not None:
        base = version.base_version.model
        bases[base.id] = (base, f"base model {base.repo_id}")
    for name in _names(card.get("base_model")):
        repo = name.partition("@")[0]
        namespace, _, short = repo.partition("/")
        found = repos.find_model(db, namespace, short) if namespace and short else None
        if found is not None and found.id != model.id:
            bases.setdefault(found.id, (found, f"base model {found.repo_id} (model card)"))
    return [model_floor(policies, base, source) for base, source in bases.values()]


def _shared_file_problems(
    db: Session, policies: PolicySet, model: Model, dua: str | None, files: list[Any]
) -> list[Problem]:
    by_sha = {f.sha256: f.path for f in files if f.size > 0}
    if not by_sha:
        return []
    holders: dict[str, dict[int, Model]] = {}
    rows = db.execute(
        select(File.sha256, Model)
        .join(Version, Version.id == File.version_id)
        .join(Model, Model.id == Version.model_id)
        .where(
            File.sha256.in_(list(by_sha)),
            Model.id != model.id,
            Version.state.in_(LIVE_VERSION_STATES),
        )
    ).all()
    for sha, holder in rows:
        holders.setdefault(sha, {})[holder.id] = holder
    problems = []
    for sha, models in sorted(holders.items(), key=lambda item: by_sha[item[0]]):
        floors = [model_floor(policies, m, f"model {m.repo_id}, which holds the same bytes,")
                  for m in models.values()]  # fmt: skip
        if not any(meets(policies, model.tier, dua, floor) for floor in floors):
            strictest = min(floors, key=lambda f: len(_requires(policies, f.tier)))
            problems.append(_below(model, dua, strictest, by_sha[sha]))
    return problems
