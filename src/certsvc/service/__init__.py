"""Composition: settings, database, staff accounts and roles, the FastAPI app and the CLI."""
