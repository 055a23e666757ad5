"""Access requests for contributor-review models: request, decide, revoke, list."""
