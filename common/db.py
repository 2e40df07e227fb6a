"""The declarative base every package's tables hang from, so one Alembic history covers all."""

from sqlalchemy import MetaData, text
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def serialise_on(db: Session, key: str) -> None:
    """Hold a transaction-long lock on `key`, so that read-count-then-write steps on it (a
    per-person limit) run one at a time. PostgreSQL: an advisory lock, released at commit or
    rollback. SQLite needs none: writing transactions begin with the database's write lock."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
