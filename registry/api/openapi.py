"""A generated OpenAPI 3.1 document for ``/api/v1``.

Views describe themselves with ``@document(...)``; ``build_openapi`` walks the route table.
A body or answer is a pydantic model (``registry.api.schemas``: the same class validates the
request) or a plain JSON Schema dict kept beside the view; the models' definitions go under
``components/schemas``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])
DOC_ATTR = "registry_openapi"
# A body or answer not described further (yet): any JSON object.
OBJECT: dict[str, Any] = {"type": "object"}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
}


Schema = dict[str, Any] | type[BaseModel]
REF_TEMPLATE = "#/components/schemas/{model}"


def document(
    summary: str,
    *,
    body: Schema | None = None,
    response: Schema | None = None,
    status: int = 200,
    query: dict[str, dict[str, Any]] | None = None,
    content_type: str = "application/json",
    response_type: str = "application/json",
    also_produces: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Attach OpenAPI metadata to a view (request body, response schema, query params)."""

    def decorate(view: F) -> F:
        setattr(
            view,
            DOC_ATTR,
            {
                "summary": summary,
                "body": body,
                "response": response,
                "status": status,
                "query": query or {},
                "content_type": content_type,
                "response_type": response_type,
                "also_produces": also_produces,
            },
        )
        return view

    return decorate


def json_schema(schema: Schema | None, components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as JSON Schema; a model's nested definitions are added to ``components``."""
    if schema is None:
        return {}
    if isinstance(schema, dict):
        return schema
    generated = schema.model_json_schema(ref_template=REF_TEMPLATE)
    components.update(generated.pop("$defs", {}))
    components[schema.__name__] = generated
    return {"$ref": REF_TEMPLATE.format(model=schema.__name__)}


def build_openapi(app: Flask, prefix: str = "/api/v1") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix):
            continue
        view = app.view_functions[rule.endpoint]
        meta = _find_meta(view)
        if meta is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{([a-z_]+)}", path)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in meta["query"].items()
        ]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if meta["response_type"] == "application/json":
                answer = json_schema(meta["response"], components)
            else:
                answer = {"type": "string", "format": "binary"}
            content = {meta["response_type"]: {"schema": answer}}
            for media_type in meta.get("also_produces", ()):
                content[media_type] = {"schema": {"type": "string"}}
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint}_{method.lower()}",
                "summary": meta["summary"],
                "parameters": params,
                "responses": {
                    str(meta["status"]): {"description": "Success", "content": content},
                    "4XX": {
                        "description": "Client error with a message saying what to fix",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                    "5XX": {
                        "description": "Database or blob storage unavailable (503) or blob "
                        "storage full (507); nothing of the request was kept; retry later",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                },
            }
            if meta["body"] is not None and method in {"POST", "PUT", "PATCH"}:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        meta["content_type"]: {"schema": json_schema(meta["body"], components)}
                    },
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "RoentGen registry API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }


def _find_meta(view: Any) -> dict[str, Any] | None:
    while view is not None:
        meta = getattr(view, DOC_ATTR, None)
        if meta is not None:
            return meta
        view = getattr(view, "__wrapped__", None)
    return None
