"""Alembic environment: run by `certsvc.db.upgrade_database` on the connection it passes
in `config.attributes["connection"]`, so no URL (and no password) goes through alembic.ini."""

from alembic import context
from sqlalchemy.engine import Connection

from certsvc.models_registry import import_all_models
from common.db import Base

import_all_models()


def run_migrations_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run `certsvc init`")
run_migrations_online(context.config.attributes["connection"])
