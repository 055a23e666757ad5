"""Typed request and response bodies (pydantic v2): they validate and they document.

``registry.api.bodies.parse_body(Model)`` validates a request body against a ``Body`` model
and translates every problem into the one ``problems`` shape; ``@document(body=Model,
response=Model)`` puts the same models into the OpenAPI document (``registry.api.openapi``
collects their definitions under ``components/schemas``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: strict types (no "5" for 5); unknown fields are ignored, as before."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Answer(BaseModel):
    """A response body; documents what is always there (clients must ignore extra keys)."""

    model_config = ConfigDict(extra="allow")
