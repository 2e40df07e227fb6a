"""The audit log's C2SP tlog-tiles, served as the files `certsvc audit publish-tiles` (or the
service's checkpointer) wrote into `CERTSVC_AUDIT_TILES_DIR`, under `/audit/tiles/`.

Served by the full service, and by a public node only when its operator sets the directory
there too (the entries name staff accounts, workstations and case numbers — never a personal
value, but the body decides whether the public mirrors them). Only paths of the spec's form are
answered; tiles and bundles never change, so they are cached for a year; the checkpoint for a
few seconds."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from common.errors import NotFound
from verify.published import CHECKPOINT_CACHE, IMMUTABLE, TEXT, TILES_PATH, cached

# tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>]: N in 3-digit groups, all but the last
# prefixed x; L 0–63, W 1–255, no leading zeroes.
TILE = re.compile(
    r"tile/(?:entries|[1-5]?[0-9]|6[0-3])/(?:x[0-9]{3}/)*[0-9]{3}"
    r"(?:\.p/(?:[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))?"
)

router = APIRouter(tags=["audit"])


@router.get(
    TILES_PATH + "/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}, "text/plain": {}}},
        304: {"description": "the client's copy (If-None-Match: its ETag) is current"},
        404: {"description": "no such tile, or tiles not served by this node"},
    },
)
def get_tile(path: str, request: Request) -> Response:
    """`checkpoint`, a tile or an entry bundle of the audit log (c2sp.org/tlog-tiles)."""
    directory: Path | None = getattr(request.app.state.settings, "audit_tiles_dir", None)
    if directory is None or not (path == "checkpoint" or TILE.fullmatch(path)):
        raise NotFound("no such tile")
    try:
        content = (directory / path).read_bytes()
    except OSError:
        raise NotFound("no such tile") from None
    if path == "checkpoint":
        return cached(request, content, TEXT, CHECKPOINT_CACHE)
    return cached(request, content, "application/octet-stream", IMMUTABLE)
