"""Public views of a register entry, from the allow-list and nothing else (R8)."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from verify.codes import QUALIFICATIONS, REVOCATION_CATEGORIES, SUBJECTS


class RegisterEntry(Protocol):
    """A register row, as an ORM object or a Core or lookup row: the fields a view may use."""

    @property
    def status(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def qualification(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body_code(self) -> str: ...
    @property
    def issue_date(self) -> date: ...
    @property
    def masked_name(self) -> str: ...
    @property
    def revoked_on(self) -> date | None: ...
    @property
    def revocation_category(self) -> str | None: ...


def _named(table: dict[str, tuple[str, str]], code: str | None) -> dict[str, str] | None:
    if code is None:
        return None
    zh, en = table.get(code, (code, code))
    return {"code": code, "zh": zh, "en": en}


def public_view(record: RegisterEntry, body_name: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "status": record.status,
        "number": record.number,
        "qualification": _named(QUALIFICATIONS, record.qualification),
        "subject": _named(SUBJECTS, record.subject),
        "issuing_body": {"code": record.body_code, "name": body_name},
        "issue_date": record.issue_date.isoformat(),
        "holder": record.masked_name,
        "revoked_on": record.revoked_on.isoformat() if record.revoked_on else None,
        "revocation_category": _named(REVOCATION_CATEGORIES, record.revocation_category),
    }
    return view
