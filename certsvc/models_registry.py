"""The one place that knows every module defining tables, so that Alembic and the schema tests
see the whole `Base.metadata`. A package adding tables adds its models module here."""

import importlib

MODEL_MODULES = (
    "certsvc.accounts",
    "certsvc.workstations",
    "certsvc.storage_media",
    "certsvc.console.models",
    "signer.models",
    "audit.models",
    "verify.models",
    "verify.outbox",
    "vault.models",
    "certify.models",
)


def import_all_models() -> None:
    """Import every models module, registering its tables on `common.db.Base.metadata`."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
