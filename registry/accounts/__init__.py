"""Accounts: users, passwords, web sessions, institutions, memberships and API tokens."""
