"""The publishing validator, under the name the server's modules import it by.

The rules themselves live in ``client.shared.validation`` (standard library + PyYAML only), so
``registry-client push`` runs the very same checks without importing the registry. The checks
that need the database (tier floors, the evaluation policy, upload sessions) stay in their own
modules beside this one.
"""

from __future__ import annotations

from client.shared import validation as _shared
from client.shared.validation import *  # noqa: F403  (every name in its __all__)

__all__ = list(_shared.__all__)
