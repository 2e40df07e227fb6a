"""The README's certification round, run as written against a live `certsvc serve`, so that
its examples cannot rot: every ```bash block, in order, in one shell; each block's answer (the
```text block after it) names the HTTP statuses its requests must print, fields of the last
JSON answer, and lines the commands must print. Its code tables are the code's, and every link
in the README and docs/ lands on a file and heading of the repository."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from certify.calendar_import import import_schedule
from certify.checks import RECORDER_ROLES, RESULTS
from certify.workdays import package_covers
from certsvc.db import make_engine, make_sessionmaker
from certsvc.settings import Settings
from init_cache import initialised
from server_support import CERTSVC, serving
from signer.actor import Actor
from verify.codes import QUALIFICATIONS, REVOCATION_CATEGORIES, SUBJECTS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HOLIDAYS = ("元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")


@dataclass
class Step:
    script: str
    answer: str


def readme_steps(text: str) -> list[Step]:
    """Every ```bash block with the ```text block right after it (its answer)."""
    blocks = list(FENCE.finditer(text))
    steps = []
    for n, block in enumerate(blocks):
        if block.group(1) != "bash":
            continue
        following = blocks[n + 1] if n + 1 < len(blocks) else None
        adjacent = following is not None and not text[block.end() : following.start()].strip()
        answered = following is not None and adjacent and following.group(1) == "text"
        steps.append(Step(block.group(2), following.group(2) if answered and following else ""))
    return steps


def shown_statuses(answer: str) -> list[str]:
    first = answer.splitlines()[0] if answer.strip() else ""
    return first.split() if re.fullmatch(r"(\d{3} ?)+", first) else []


def shown_json(answer: str) -> str:
    """The answer's JSON fragment: from a line starting with `{` to the last indented line."""
    lines, inside = [], False
    for line in answer.splitlines():
        inside = line.startswith("{") or (inside and line.startswith(" "))
        if inside:
            lines.append(line)
    return "\n".join(lines)


def shown_lines(answer: str) -> list[str]:
    """Lines the commands print: neither the statuses nor JSON."""
    json_part = set(shown_json(answer).splitlines())
    lines = answer.splitlines()[1 if shown_statuses(answer) else 0 :]
    return [line for line in lines if line not in json_part and line.strip()]


def shown_fields(fragment: str) -> list[tuple[str, Any]]:
    """`"key": literal` pairs of a trimmed JSON fragment (`...`: a key whose value is an object
    or a list); values holding `…` vary from run to run and only their key counts."""
    pairs = re.findall(r'"(\w+)": ("(?:[^"\\]|\\.)*"|-?\d+|true|false|null|\[\]|\{|\[)', fragment)
    fields: list[tuple[str, Any]] = []
    for key, literal in pairs:
        value = ... if literal in ("{", "[") else json.loads(literal)
        fields.append((key, ... if isinstance(value, str) and "…" in value else value))
    return fields


def has_field(answer: Any, key: str, value: Any) -> bool:
    if isinstance(answer, dict):
        if key in answer and (value is ... or answer[key] == value):
            return True
        return any(has_field(v, key, value) for v in answer.values())
    if isinstance(answer, list):
        return any(has_field(v, key, value) for v in answer)
    return False


def _substitute(script: str, base: str, home: Path) -> str:
    script = script.replace("http://127.0.0.1:8000", base)
    script = script.replace(".venv/bin/certsvc", CERTSVC)
    return re.sub(r"(?<![\w./-])var/", f"{home}/", script)


def _cover_the_calendar(settings: Settings, steps: list[Step]) -> None:
    """Years the round reaches (its dates `date -d '+N days'`, and the decision deadline some
    weeks after its confirmation) that the calendar package does not cover yet get a made-up
    schedule, standing in for the State Council's notice a body would import (as the README
    says)."""
    ahead = max(int(n) for s in steps for n in re.findall(r"'\+(\d+) days'", s.script))
    today = date.today()
    years = {today.year, (today + timedelta(days=ahead)).year}
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine).begin() as db:
            for year in sorted(y for y in years if not package_covers(y)):
                rows = [
                    f"{year}-{n + 1:02d}-1{n},holiday,{name},test"
                    for n, name in enumerate(HOLIDAYS)
                ]
                data = "\n".join(["date,kind,name,source", *rows]).encode()
                import_schedule(db, Actor("officer", 0, "officer"), data)
    finally:
        engine.dispose()


def test_the_readme_round_runs_as_written(settings: Settings, tmp_path: Path) -> None:
    steps = readme_steps(README.read_text())
    assert sum("curl" in step.script for step in steps) >= 6
    assert all(step.answer for step in steps if "curl" in step.script), "a request without answer"
    initialised(settings)
    _cover_the_calendar(settings, steps)
    home = settings.resolved_home
    work = tmp_path / "work"
    work.mkdir()
    with serving() as server:
        parts = [
            f"echo '@@step {n}'\n{_substitute(step.script, server.base, home)}\n"
            f"echo \"@@rc $?\"\ncat a.json 2>/dev/null\necho\necho '@@done {n}'"
            for n, step in enumerate(steps)
        ]
        run = subprocess.run(
            ["bash", "-c", "\n".join(parts)], cwd=work, capture_output=True, text=True, timeout=600
        )
    output = run.stdout + run.stderr
    for n, step in enumerate(steps):
        segment = re.search(
            rf"^@@step {n}\n(.*?)^@@rc (\d+)\n(.*?)^@@done {n}$", run.stdout, re.M | re.S
        )
        assert segment is not None, f"block {n} did not finish:\n{output}"
        printed, rc, body = segment.group(1), segment.group(2), segment.group(3)
        where = f"README block {n}:\n{step.script}\nprinted:\n{printed}"
        assert rc == "0", where
        statuses = re.findall(r"^(\d{3})$", printed, re.M)
        assert statuses == shown_statuses(step.answer), where
        fields = shown_fields(shown_json(step.answer))
        if fields:
            answer = json.loads(body)
            for key, value in fields:
                assert has_field(answer, key, value), f"{where}\nanswer {body}\nmissing {key}"
        for line in shown_lines(step.answer):
            pattern = ".*".join(re.escape(part) for part in line.strip().split("…"))
            assert re.search(pattern, output), f"{where}\nnot printed: {line}"


def _table(text: str, first_header: str) -> list[list[str]]:
    """The rows of the Markdown table whose first column is headed `first_header`."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_the_readme_code_tables_are_the_codes() -> None:
    text = README.read_text()
    for header, codes in (
        ("qualification", QUALIFICATIONS),
        ("subject", SUBJECTS),
        ("revocation category", REVOCATION_CATEGORIES),
    ):
        shown = {}
        for row in _table(text, header):
            for n in range(0, len(row), 3):
                shown[row[n].strip("`")] = (row[n + 1], row[n + 2])
        assert shown == codes, header
    checks: dict[str, tuple[list[str], set[str]]] = {}
    for kinds, results, recorders in _table(text, "check (`kind`)"):
        for kind in re.findall(r"`(\w+)`", kinds):
            roles = set(re.findall(r"registrar|officer", recorders))
            checks[kind] = (re.findall(r"`(\w+)`", results), roles)
    assert {kind: (set(r), r[0], roles) for kind, (r, roles) in checks.items()} == {
        kind: (set(results), passing, set(RECORDER_ROLES[kind]))
        for kind, (results, passing) in RESULTS.items()
    }


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_of_the_readme_and_docs_lands_in_the_repository() -> None:
    documents = [README, ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(documents) >= 5
    links = 0
    for document in documents:
        text = FENCE.sub("", document.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            landing = (document.parent / path).resolve() if path else document
            assert landing.is_file() and ROOT in landing.parents, f"{document.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", FENCE.sub("", landing.read_text()), re.M)
                assert anchor in {_slug(h) for h in headings}, f"{document.name}: {target}"
            links += 1
    assert links >= 10
    assert len(README.read_text().splitlines()) <= 300
