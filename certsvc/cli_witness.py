"""`certsvc witness …`: make a witness key, run a C2SP tlog-witness for this log (and others).

Needs no database, token or service configuration: a second party runs it on its own machine
with the log's vkeys, and hands its own vkey to the log's operator
(`CERTSVC_AUDIT_WITNESSES`)."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from audit.note import InvalidNote, NoteKey, parse_vkey
from audit.witness_protocol import witness_key
from certsvc.log_config import log_config
from certsvc.witness_server import (
    Witness,
    WitnessKeyError,
    WitnessState,
    create_witness_app,
    load_key,
    make_key,
)

witness_app = typer.Typer(
    help="Run a witness that cosigns audit checkpoints.", no_args_is_help=True
)
logger = logging.getLogger(__name__)
NameOption = Annotated[
    str, typer.Option(help="the witness's name, a schema-less URL, e.g. inspect.example.cn/w1")
]
KeyOption = Annotated[Path, typer.Option(help="the witness's Ed25519 key file (PEM, 0600)")]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise typer.BadParameter("--name: non-empty, without spaces or plus signs")
    return name


@witness_app.command("init")
def init(name: NameOption, key: KeyOption) -> None:
    """Make the witness's key (never overwriting one) and print its vkey, for the log's
    operator to configure."""
    _check_name(name)
    if key.exists():
        raise typer.BadParameter(f"--key: {key} exists; a witness keeps its key")
    private = make_key(key)
    typer.echo(witness_key(name, private.public_key()).vkey())


@witness_app.command("serve")
def serve(
    name: NameOption,
    key: KeyOption,
    state: Annotated[Path, typer.Option(help="directory of the witness's state (0700)")],
    log_vkey: Annotated[
        list[str],
        typer.Option(help="a vkey of a log to witness (its name is the log's origin); repeatable"),
    ],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8020,
) -> None:
    """Serve `POST /add-checkpoint` (and `GET /<origin hash>/checkpoint`) for the logs named."""
    _check_name(name)
    log_keys: list[NoteKey] = []
    for vkey in log_vkey:
        try:
            log_keys.append(parse_vkey(vkey))
        except InvalidNote as exc:
            raise typer.BadParameter(f"--log-vkey: {exc}") from None
    try:
        private = load_key(key)
    except WitnessKeyError as exc:
        raise typer.BadParameter(f"--key: {exc}") from None
    try:
        witness = Witness(name, private, log_keys, WitnessState(state))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"--state: {exc}") from None
    logging_setup = log_config("text", "info")
    logging.config.dictConfig(logging_setup)
    logger.info("witness %s (vkey %s) on http://%s:%d", name, witness.public.vkey(), host, port)
    uvicorn.run(
        create_witness_app(witness),
        host=host,
        port=port,
        access_log=False,
        log_config=logging_setup,
    )
