"""The QR symbol: alphanumeric segments for the URL and the base45 payload, one byte segment
for the '#' between them (not in the alphanumeric set), error correction M — which keeps a
certificate's QR at version 10 or below. Reading back uses zxing-cpp, a maintained decoder."""

from __future__ import annotations

import io
from pathlib import Path

import qrcode
import zxingcpp
from PIL import Image
from qrcode.util import MODE_8BIT_BYTE, MODE_ALPHA_NUM, QRData

from common.files import open_for_writing

MAX_VERSION = 10
QUIET_MODULES = 4
ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


class QrTooLarge(ValueError):
    """The content needs a QR version above the printable limit."""


def build_qr(text: str) -> qrcode.QRCode:
    """A QR code for `text`, segmented so that alphanumeric runs stay alphanumeric."""
    symbol = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=QUIET_MODULES
    )
    for segment in _segments(text):
        mode = MODE_ALPHA_NUM if segment[0] in ALPHANUMERIC else MODE_8BIT_BYTE
        symbol.add_data(QRData(segment.encode(), mode=mode))
    symbol.make(fit=True)
    if symbol.version > MAX_VERSION:
        raise QrTooLarge(f"qr: needs version {symbol.version}, the limit is {MAX_VERSION}")
    return symbol


def qr_modules(text: str) -> tuple[tuple[bool, ...], ...]:
    """The symbol's modules row by row, dark = True, quiet zone left out: what a printed sheet
    draws as vectors, so that `printing` needs no QR code of its own."""
    matrix = build_qr(text).get_matrix()
    return tuple(
        tuple(row[QUIET_MODULES:-QUIET_MODULES]) for row in matrix[QUIET_MODULES:-QUIET_MODULES]
    )


def qr_version(text: str) -> int:
    return int(build_qr(text).version)


def write_png(text: str, path: Path) -> int:
    """Write the QR as PNG; return its version (recorded in the demo manifest)."""
    symbol = build_qr(text)
    with open_for_writing(path, "qr_png", "wb") as out:
        symbol.make_image().save(out)
    return int(symbol.version)


def png_bytes(text: str) -> bytes:
    out = io.BytesIO()
    build_qr(text).make_image().save(out)
    return out.getvalue()


def decode_image(path: Path) -> str:
    """The text of the one QR code in an image file."""
    with Image.open(path) as image:
        found = zxingcpp.read_barcodes(image)
    codes = [code.text for code in found if code.format == zxingcpp.BarcodeFormat.QRCode]
    if len(codes) != 1:
        raise ValueError(f"image: found {len(codes)} QR codes, expected one")
    return str(codes[0])


def _segments(text: str) -> list[str]:
    segments: list[str] = []
    for char in text:
        kind = char in ALPHANUMERIC
        if segments and (segments[-1][0] in ALPHANUMERIC) == kind:
            segments[-1] += char
        else:
            segments.append(char)
    return segments
