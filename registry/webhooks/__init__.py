"""Webhooks: institutions and registry admins subscribe URLs to registry events; deliveries
are HMAC-SHA256 signed, go out through the outbox and are checked against internal targets."""
