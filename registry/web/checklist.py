"""The researcher's way to a download as a checklist: every step the model's tier asks
for, each done (✓), waiting for someone else's review, or still to do, with the next
thing to do linked. Built from the engine's decision, so it never disagrees with it."""

from __future__ import annotations

import dataclasses

from registry.access.decision import Decision, Missing
from registry.access.requirements import model_dua
from registry.context import current_registry
from registry.models import Model

DONE, WAITING, TODO = "done", "waiting", "todo"
# What a Missing says when the researcher did their part and a reviewer has to act.
WAITING_VERBS = {"see its status", "see"}


@dataclasses.dataclass(frozen=True)
class Step:
    """One requirement as the researcher reads it."""

    requirement: str
    title: str
    state: str
    detail: str = ""
    fix_url: str = ""
    verb: str = ""
    is_next: bool = False

    @property
    def state_words(self) -> str:
        return {DONE: "done", WAITING: "waiting for review", TODO: "to do"}[self.state]


def _title(requirement: str, model: Model) -> str:
    policies = current_registry().policy.policies
    kind, _, arg = requirement.partition(":")
    if requirement == "authenticated":
        return "Log in or create an account"
    if requirement == "email-verified":
        return "Verify your email address"
    if requirement == "terms-accepted":
        return "Accept the terms of use"
    if requirement == "credentialed":
        return "Become a credentialed researcher"
    if kind == "training" and arg in policies.trainings:
        return f"Complete the {policies.trainings[arg].title} training"
    if requirement in ("dua-signed", "dua"):
        dua = arg or model_dua(policies, model)
        spec = policies.duas.get(dua or "")
        return f"Sign the {spec.title if spec else dua or 'data use agreement'}"
    if requirement == "access-request-accepted":
        return f"Request access to {model.repo_id}"
    return requirement


def _plain(message: str) -> str:
    """The engine's sentence with policy ids replaced by their titles."""
    policies = current_registry().policy.policies
    for dua_id, spec in policies.duas.items():
        message = message.replace(f"DUA {dua_id}", spec.title).replace(dua_id, spec.title)
    return message


def _state(missing: Missing | None) -> str:
    if missing is None:
        return DONE
    if missing.verb in WAITING_VERBS or "await" in missing.message:
        return WAITING
    return TODO


def checklist(model: Model, access: Decision) -> list[Step]:
    """The tier's steps in order; the first one still to do is marked as the next."""
    tier = current_registry().policy.tier(model.tier)
    requirements = list(tier.requires) if tier is not None else []
    missing = {item.requirement: item for item in access.missing}
    anonymous = "authenticated" in missing
    if anonymous and "authenticated" not in requirements:
        requirements.insert(0, "authenticated")
    steps: list[Step] = []
    for requirement in requirements:
        item = missing.get(requirement)
        if anonymous and requirement != "authenticated":
            state, detail, fix_url, verb = TODO, "", "", ""
        else:
            state = _state(item)
            detail = _plain(item.message) if item is not None else ""
            fix_url = item.fix_url if item is not None else ""
            verb = item.verb if item is not None else ""
        steps.append(Step(requirement, _title(requirement, model), state, detail, fix_url, verb))
    for index, step in enumerate(steps):
        if step.state == TODO and step.fix_url:
            steps[index] = dataclasses.replace(step, is_next=True)
            break
    # Requirements the engine named that the tier list does not (never hidden).
    known = set(requirements)
    steps += [
        Step(
            m.requirement,
            _title(m.requirement, model),
            _state(m),
            _plain(m.message),
            m.fix_url,
            m.verb,
        )
        for m in access.missing
        if m.requirement not in known
    ]
    return steps


def only_waiting(steps: list[Step]) -> bool:
    """True when the researcher has nothing left to do: only reviewers have."""
    return any(s.state == WAITING for s in steps) and not any(s.state == TODO for s in steps)
