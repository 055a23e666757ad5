"""The registry client: ``RegistryClient`` (Python) and the ``registry-client`` CLI."""

from client.api import PullResult, RegistryClient, parse_ref
from client.errors import RegistryClientError

__all__ = ["PullResult", "RegistryClient", "RegistryClientError", "parse_ref"]
