"""Credential evidence: applications, trainings and DUA signatures, reviewed by admins."""
