"""Outgoing mail: a durable outbox in the database, delivered by a worker over SMTP (or
written as ``.eml`` files when no SMTP server is configured). Webhook deliveries share it."""
