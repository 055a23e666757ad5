"""Event tags are one declared list: the docs table is generated from it, record_event and
the filters refuse anything else, and every tag the code records literally is declared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registry.audit.services import record_event
from registry.audit.tags import EventTag, check_filter, tags_table
from registry.unit_of_work import unit_of_work
from tests.registry.audit_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
LITERAL_TAG = re.compile(r'record_event\(\s*\w+,\s*"([a-z-]+:[a-z-]+)"')


def test_the_docs_table_is_the_declared_list(settings) -> None:
    docs = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    assert tags_table() in docs, "regenerate the table in docs/audit.md: registry-server audit tags"
    printed = run_cli(settings, "audit", "tags")
    assert printed.exit_code == 0 and printed.output == tags_table()


def test_every_literal_tag_in_the_code_is_declared() -> None:
    used = {
        match
        for path in (ROOT / "registry").rglob("*.py")
        for match in LITERAL_TAG.findall(path.read_text(encoding="utf-8"))
    }
    assert used and used <= {str(tag) for tag in EventTag}, used - set(EventTag)


def test_an_undeclared_tag_is_refused(registry) -> None:
    with unit_of_work(registry.sessions) as db, pytest.raises(ValueError, match="tags.py"):
        record_event(db, "version:teleport")
    assert check_filter("version:") == "version:"
    with pytest.raises(ValueError, match="account:, "):
        check_filter("nonsense:")
