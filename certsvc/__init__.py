"""certsvc: tokenised personal data, USBKey-controlled signing and public QR verification
for teacher-qualification certificates.

This package composes the others: settings, database, staff accounts and roles, the FastAPI
apps and the CLI."""

__version__ = "0.1.0"
