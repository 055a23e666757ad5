"""Who is writing: the registry's name and public URL, for subjects, links and footers."""

from __future__ import annotations

import dataclasses

from registry.config import Settings


@dataclasses.dataclass(frozen=True)
class Site:
    name: str
    url: str  # the public URL, without a trailing slash

    @classmethod
    def of(cls, settings: Settings) -> Site:
        return cls(settings.site_name, settings.public_url.rstrip("/"))

    def link(self, path: str) -> str:
        """An absolute link to a page of this registry."""
        return f"{self.url}{path}"
