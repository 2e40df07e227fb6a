"""Where the CLI prints. To a terminal, as wide as it is; to a pipe or a file, without a width:
rich would otherwise assume 80 columns and cut values short with "…" (a role, a fingerprint),
which a script reading the output cannot undo."""

from __future__ import annotations

import sys

from rich.console import Console

# Wide enough for any table the CLI prints, never reached in practice.
UNBOUNDED = 10_000


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else UNBOUNDED)
