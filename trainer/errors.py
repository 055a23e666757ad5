"""The base of every error the trainer raises for bad input, so the CLI can show it plainly."""

from __future__ import annotations


class TrainerError(ValueError):
    """Bad input or state, with a message that says what to change."""
