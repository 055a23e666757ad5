"""Schemathesis against /api/v1/openapi.json: no 5xx, every response matches the schema.

Runs against the WSGI app (SQLite and PostgreSQL, a real blob folder), as a registry admin
and as an anonymous caller, with a bounded number of examples per operation. Every
operation documents its success answer (no bare objects), so the schema check bites.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 10


@pytest.fixture
def fuzz_app(app, people, tiny_model_dir):
    """The app with an admin token, one institution and one published open model."""
    from tests.fixtures.repos import publish_folder

    admin = people.user("fuzz-admin@example.org", admin=True)
    app.config["FUZZ_TOKEN"] = people.token(admin, "admin")
    publish_folder(app.extensions["registry"], "demo/fuzz", tiny_model_dir)
    return app


def _schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.mark.parametrize("as_admin", [True, False], ids=["admin", "anonymous"])
def test_api_never_answers_5xx_and_matches_its_schema(fuzz_app, as_admin):
    schema = _schema(fuzz_app)
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}"} if as_admin else {}
    failures: list[str] = []
    operations = list(schema.get_all_operations())
    assert len(operations) > 10, "the OpenAPI document lists too few operations"
    for result in operations:
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(headers=headers)
            case.validate_response(
                response,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as error:  # report every operation's failure
            failures.append(f"{operation.label}: {str(error)[:800]}")
    assert not failures, "\n\n".join(failures)


def test_no_operation_answers_a_bare_object(app):
    from registry.api.openapi import build_openapi

    document = build_openapi(app)
    bare = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    continue
                for media, content in answer["content"].items():
                    schema = content["schema"]
                    if media == "application/json" and not (
                        schema.get("$ref")
                        or schema.get("properties")
                        or schema.get("items")
                        or schema.get("type") == "array"
                    ):
                        bare.append(f"{method.upper()} {path}")
    assert not bare, bare
