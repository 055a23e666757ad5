"""Evaluation requirements at commit: ``policies/evaluation.yaml`` keyed by tier and dataset.

A rule names the evaluation sections a version's card must carry (``privacy``, ``utility``,
``diversity``, ``fidelity``) and, for some, what they must show::

    evaluation:
      tiers:    {<tier>: {privacy: {max_near_copies: 0, near_copy_distance: 0.02}}}
      datasets: {<dataset>: {privacy: {max_near_copies: 0, min_generated: 100},
                             utility: {min_gain: 0.0}}}

``max_near_copies``: at most this many near-copies (the report's count, or, with
``near_copy_distance``, the generated images whose pixel distance to the nearest training
image is under that distance); ``min_generated``: the privacy check looked at this many
generated images; ``min_gain``: the utility gain (real+synthetic minus real macro AUROC)
is at least this. A version that misses one is refused at commit with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from client.shared.model_card import CARD_PATH
from registry.config import ConfigError
from registry.publishing.validation import Problem

POLICY_FILE = "evaluation.yaml"
SECTIONS = ("privacy", "utility", "diversity", "fidelity")
SETTINGS = {
    "privacy": {"max_near_copies", "near_copy_distance", "min_generated"},
    "utility": {"min_gain"},
    "diversity": set(),
    "fidelity": set(),
}
EVALUATE = "registry-train evaluate MODEL --{section} --data MANIFEST"


class EvaluationPolicyError(ConfigError):
    """``policies/evaluation.yaml`` is malformed; the message names the key."""


@dataclass(frozen=True)
class Requirement:
    """One section a rule requires, with its settings and where the rule came from."""

    source: str  # "tier 'open'" or "dataset 'mimic-cxr'"
    section: str
    settings: dict[str, Any]


def load_rules(policies_path: Path) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{"tiers": {...}, "datasets": {...}}``, checked; empty when the file is absent."""
    path = Path(policies_path) / POLICY_FILE
    if not path.is_file():
        return {"tiers": {}, "datasets": {}}
    try:
        document = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as exc:
        raise EvaluationPolicyError(f"policy file {POLICY_FILE}: invalid YAML: {exc}") from None
    body = document.get("evaluation") if isinstance(document, dict) else None
    if not isinstance(body, dict) or set(document) != {"evaluation"}:
        raise EvaluationPolicyError(f"policy file {POLICY_FILE}: one top-level key, 'evaluation'")
    rules: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"tiers": {}, "datasets": {}}
    for kind, entries in body.items():
        if kind not in rules:
            raise EvaluationPolicyError(
                f"policy file {POLICY_FILE}: evaluation.{kind}: use 'tiers' or 'datasets'"
            )
        for name, sections in (entries or {}).items():
            where = f"evaluation.{kind}.{name}"
            if not isinstance(sections, dict):
                raise EvaluationPolicyError(f"policy file {POLICY_FILE}: {where}: a mapping")
            for section, settings in sections.items():
                settings = settings or {}
                if section not in SETTINGS or not isinstance(settings, dict):
                    raise EvaluationPolicyError(
                        f"policy file {POLICY_FILE}: {where}.{section}: one of {list(SECTIONS)}"
                        " with a mapping of settings"
                    )
                unknown = set(settings) - SETTINGS[section]
                if unknown:
                    raise EvaluationPolicyError(
                        f"policy file {POLICY_FILE}: {where}.{section}: unknown "
                        f"{sorted(unknown)}; use {sorted(SETTINGS[section])}"
                    )
                rules[kind].setdefault(str(name), {})[section] = settings
    return rules


def requirements(policies_path: Path, tier: str, card: dict[str, Any]) -> list[Requirement]:
    """Every requirement that applies to a version of ``tier`` with this card."""
    rules = load_rules(policies_path)
    datasets = card.get("datasets")
    names = [datasets] if isinstance(datasets, str) else list(datasets or [])
    found = [
        Requirement(f"tier {tier!r}", section, settings)
        for section, settings in rules["tiers"].get(tier, {}).items()
    ]
    for name in names:
        for section, settings in rules["datasets"].get(str(name), {}).items():
            found.append(Requirement(f"dataset {name!r}", section, settings))
    return found


def _privacy_shortfall(report: dict[str, Any], settings: dict[str, Any]) -> str | None:
    copies = report.get("near_copies")
    generated = (report.get("sample_sizes") or {}).get("generated")
    if not isinstance(copies, dict) or not isinstance(copies.get("count"), int):
        return "the privacy report has no near_copies.count"
    minimum = settings.get("min_generated")
    if minimum is not None and (not isinstance(generated, int) or generated < minimum):
        return f"it looked at {generated} generated images; at least {minimum} are required"
    allowed = settings.get("max_near_copies")
    if allowed is None:
        return None
    count = copies["count"]
    distance = settings.get("near_copy_distance")
    if distance is not None:
        pixel = (report.get("spaces") or {}).get("pixel") or {}
        smallest = [d for d in pixel.get("smallest") or [] if isinstance(d, int | float)]
        count = sum(d < distance for d in smallest)
        if count == len(smallest) < (generated or 0) and count <= allowed:
            return f"it lists too few pixel distances to count near-copies under {distance}"
    if count > allowed:
        at = f" at pixel distance {distance}" if distance is not None else ""
        return f"it found {count} near-copies{at}; at most {allowed} are allowed"
    return None


def _utility_shortfall(report: dict[str, Any], settings: dict[str, Any]) -> str | None:
    minimum = settings.get("min_gain")
    if minimum is None:
        return None
    gain = ((report.get("gain") or {}).get("real+synthetic - real") or {}).get("value")
    if not isinstance(gain, int | float):
        return "the utility report has no gain 'real+synthetic - real'"
    if gain < minimum:
        return f"its gain is {gain:+.4f}; at least {minimum:+.4f} is required"
    return None


def problems_for(policies_path: Path, tier: str, card: dict[str, Any]) -> list[Problem]:
    """The requirements this card misses, as validation problems on README.md."""
    evaluation = card.get("evaluation")
    evaluation = evaluation if isinstance(evaluation, dict) else {}
    problems = []
    for requirement in requirements(policies_path, tier, card):
        section = requirement.section
        where = f"policies/{POLICY_FILE} requires a {section} report for {requirement.source}"
        report = evaluation.get(section)
        if not isinstance(report, dict):
            how = EVALUATE.format(section=section)
            problems.append(
                Problem(
                    CARD_PATH,
                    f"{where}: the card has no evaluation.{section}; run `{how}` and export again",
                )  # fmt: skip
            )
            continue
        check = {"privacy": _privacy_shortfall, "utility": _utility_shortfall}.get(section)
        shortfall = check(report, requirement.settings) if check else None
        if shortfall:
            problems.append(Problem(CARD_PATH, f"{where}: {shortfall}"))
    return problems


def commit_problems(tier: str, card: dict[str, Any]) -> list[Problem]:
    """``problems_for`` with the running registry's policies folder (the commit path)."""
    from registry.context import current_registry

    return problems_for(current_registry().settings.policies_path, tier, card)
