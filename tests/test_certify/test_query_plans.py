"""Every statement the hot paths run — issuing (decisions and certificates, through the signer
with the case records), bulk tokenisation (`import_applicants`) and public verification — is
answered from an index, on SQLite and on PostgreSQL: a cost that grows with the tables' history
would make each year's issuing slower than the last (issue 22).

Plans, not timings: the statements are captured as the paths really run them (SQLAlchemy's
`before_cursor_execute`), then each is explained on the same database. SQLite's planner
chooses by the schema alone, so a `SCAN <table>` means no index can serve the query. PostgreSQL
picks a sequential scan on small tables even where an index exists; with `enable_seqscan = off`
it still falls back to one (at a prohibitive cost) when no index can serve the query, so a
`Seq Scan` left in that plan means exactly what SQLite's `SCAN` means.

PostgreSQL also walks a whole B-tree when the condition misses the index's leading column (as
`document_id IN (…)` did over the unique index on `(kind, document_id)`): an index node whose
condition does not name the index's first column counts as a scan too. (SQLite reports that
case as a `SCAN`.) The two tables whose rows grow with the configuration, not with history (the
signing keys and the vault's key versions: a handful of rows each), may be scanned.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.engine.interfaces import DBAPICursor

from certify.applicant_import import import_applicants
from certify.decisions import decide, sign_decisions
from certify.issuance import issue
from certify.models import Certificate
from test_certify.conftest import OFFICER, Body, late_ok
from test_vault.test_import import person, write_csv
from verify.lookup import RegisterLookup

TODAY = date(2020, 7, 20)
CHECKED = ("SELECT", "UPDATE", "DELETE", "WITH", "INSERT")
SQLITE_SCAN = re.compile(r"\bSCAN (\w+)")
# A row per key, per key version: as many as the body configures, however long it has run.
CONFIGURATION_TABLES = {"signing_keys", "vault_key_versions"}

Captured = list[tuple[str, Any]]


@contextmanager
def captured(engine: Engine) -> Iterator[Captured]:
    """The statements `engine` runs inside the block, each with its (first) parameters."""
    statements: Captured = []

    def record(
        _conn: Any, _cursor: DBAPICursor, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(CHECKED):
            first = parameters[0] if many and isinstance(parameters, list) else parameters
            statements.append((statement, first))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The tables the plan of `statement` reads whole (or whose index it reads whole)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            lines = [str(row[-1]) for row in cursor.fetchall()]
            return [m.group(1) for line in lines for m in [SQLITE_SCAN.search(line)] if m]
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        plan = cursor.fetchone()[0][0]["Plan"]
        return [
            found for node in _nodes(plan) if (found := _postgres_scan(cursor, node)) is not None
        ]
    finally:
        connection.rollback()
        connection.close()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _postgres_scan(cursor: Any, node: dict[str, Any]) -> str | None:
    """What a PostgreSQL plan node reads whole: a sequential scan, or an index scanned with
    no condition on its leading column (a B-tree walked end to end, e.g. `document_id = …`
    over an index on `(kind, document_id)`)."""
    table = node.get("Relation Name")
    if node["Node Type"] == "Seq Scan":
        return str(table)
    index = node.get("Index Name")
    if index is None:
        return None
    cursor.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE c.relname = %s",
        (index,),
    )
    leading = cursor.fetchone()[0]
    condition = str(node.get("Index Cond", ""))
    if re.search(rf"\b{re.escape(leading)}\b", condition):
        return None
    return str(table)


def test_hot_paths_use_indexes(body: Body, tmp_path: Path) -> None:
    engine = body.sessions.kw["bind"]
    batch_id = body.batch()
    cases = [body.case(batch_id, seed) for seed in (1, 2, 3)]
    with body.sessions.begin() as db:
        for application_id in cases:
            late_ok(db, application_id)
            decide(db, OFFICER, application_id, "approve", "all checks passed")
    rng = random.Random(22)
    people = write_csv(tmp_path / "applicants.csv", [person(rng) for _ in range(40)])

    with captured(engine) as statements:
        body.open("decision-1")
        sign_decisions(body.sessions, body.issuer.signer, body.custodian, batch_id)
        body.open("certificate-1")
        issue(body.issuer, body.custodian, cases[:2], TODAY)
        issue(body.issuer, body.custodian, cases, TODAY)  # one new, two already issued
        import_applicants(body.sessions, body.issuer.vault, people, "registrar", batch_size=16)
    with body.sessions() as db:
        verification_id = db.scalars(select(Certificate.verification_id)).first()
    assert verification_id is not None
    with captured(engine) as lookups:
        assert RegisterLookup(engine).find(verification_id) is not None

    distinct = {statement: parameters for statement, parameters in statements + lookups}
    assert len(distinct) > 10
    full = sorted(
        (table, " ".join(statement.split())[:160])
        for statement, parameters in distinct.items()
        for table in scans(engine, statement, parameters)
        if table not in CONFIGURATION_TABLES
    )
    assert full == []
