"""Who may create which hook, asked of the policy engine (used by the API and the web UI)."""

from __future__ import annotations

from registry.access.seam import authorize
from registry.models import Institution


def authorize_hook_creation(institution: Institution | None, *, allow_private: bool) -> None:
    """An institution's hook: its admins; a registry-wide one, or one allowed to reach
    internal addresses: registry admins only. Raises the engine's denial."""
    if institution is not None:
        authorize(institution, action="webhook:manage")
    if institution is None or allow_private:
        authorize(None, action="admin:manage")
