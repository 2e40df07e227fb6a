"""The certificate sheet as a PDF: A4 landscape, Chinese first with English beside it, the QR
drawn as vector modules so that it prints sharp at any printer resolution. The caller gives the
QR's modules (built by `verify.qrimage`): printing encodes nothing itself.

ReportLab embeds (subsets) TrueType outlines only, not the CFF outlines of Noto CJK, so the
Chinese font is WenQuanYi Zen Hei from Debian's `fonts-wqy-zenhei`, read from the system at
render time: nothing is downloaded, and every glyph used is embedded in the PDF.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

DEFAULT_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
PAGE_WIDTH, PAGE_HEIGHT = landscape(A4)
MARGIN = 14 * mm
# The symbol itself, quiet zone not included: scans when printed (the issue asks ≥ 25 mm).
QR_SIZE = 32 * mm
LABEL_X = MARGIN + 22 * mm
VALUE_X = MARGIN + 78 * mm
VALUE_MAX_WIDTH = PAGE_WIDTH - VALUE_X - QR_SIZE - MARGIN - 24 * mm


class FontMissing(RuntimeError):
    """The CJK font is not installed (Debian package `fonts-wqy-zenhei`)."""


@dataclass(frozen=True)
class CertificateSheet:
    """What the printed certificate shows. The holder's full name: this is their own document.
    `qr_modules`: the QR symbol row by row, dark = True, without its quiet zone."""

    holder_name: str
    qualification_zh: str
    qualification_en: str
    subject_zh: str
    subject_en: str
    number: str
    body_name: str
    issue_date: date
    qr_modules: tuple[tuple[bool, ...], ...]


def render_certificate_pdf(fields: CertificateSheet, font_path: Path = DEFAULT_FONT) -> bytes:
    """One A4 landscape page; byte-for-byte the same for the same fields (ReportLab's
    invariant mode), so a re-run of an interrupted batch renders what it rendered before."""
    font = _register_font(font_path)
    out = io.BytesIO()
    canvas = Canvas(
        out,
        pagesize=(PAGE_WIDTH, PAGE_HEIGHT),
        invariant=True,
        pageCompression=1,
        initialFontName=font,
    )
    canvas.setTitle(f"教师资格证书 {fields.number}")
    canvas.setSubject("Teacher Qualification Certificate")
    canvas.setAuthor(fields.body_name)
    canvas.setCreator("certsvc")
    _frame(canvas)
    _heading(canvas, font)
    _rows(canvas, font, fields)
    _qr(canvas, font, fields.qr_modules)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _register_font(font_path: Path) -> str:
    """The ReportLab name of the font file, registered once per process and path."""
    if not font_path.is_file():
        raise FontMissing(
            f"font: {font_path} not found; install the Debian package fonts-wqy-zenhei"
        )
    name = f"certsvc-{font_path.resolve()}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(font_path), subfontIndex=0))
    return name


def _frame(canvas: Canvas) -> None:
    canvas.setStrokeColorRGB(0.55, 0.12, 0.12)
    canvas.setLineWidth(2.2)
    canvas.rect(MARGIN / 2, MARGIN / 2, PAGE_WIDTH - MARGIN, PAGE_HEIGHT - MARGIN)
    canvas.setLineWidth(0.6)
    inset = MARGIN / 2 + 2.5 * mm
    canvas.rect(inset, inset, PAGE_WIDTH - 2 * inset, PAGE_HEIGHT - 2 * inset)


def _heading(canvas: Canvas, font: str) -> None:
    canvas.setFillColorRGB(0.55, 0.12, 0.12)
    canvas.setFont(font, 30)
    canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - MARGIN - 24 * mm, "教师资格证书")
    canvas.setFont(font, 14)
    canvas.drawCentredString(
        PAGE_WIDTH / 2, PAGE_HEIGHT - MARGIN - 33 * mm, "Teacher Qualification Certificate"
    )
    canvas.setFillColorRGB(0, 0, 0)


def _rows(canvas: Canvas, font: str, fields: CertificateSheet) -> None:
    rows = (
        ("姓名", "Name", fields.holder_name, None),
        ("资格种类", "Qualification", fields.qualification_zh, fields.qualification_en),
        ("任教学科", "Subject", fields.subject_zh, fields.subject_en),
        ("证书编号", "Certificate No.", fields.number, None),
        ("认定机构", "Issuing body", fields.body_name, None),
        (
            "签发日期",
            "Date of issue",
            _chinese_date(fields.issue_date),
            fields.issue_date.isoformat(),
        ),
    )
    y = PAGE_HEIGHT - MARGIN - 55 * mm
    for label_zh, label_en, value, value_en in rows:
        canvas.setFont(font, 13)
        canvas.drawString(LABEL_X, y, label_zh)
        canvas.setFont(font, 8)
        canvas.drawString(LABEL_X, y - 4.5 * mm, label_en)
        _fitted(canvas, font, value, 15, VALUE_X, y)
        if value_en is not None:
            _fitted(canvas, font, value_en, 9, VALUE_X, y - 4.5 * mm)
        y -= 18 * mm


def _fitted(canvas: Canvas, font: str, text: str, size: float, x: float, y: float) -> None:
    """Draw `text` at `size`, smaller when it would run into the QR: a long name or body
    name still prints whole."""
    width = pdfmetrics.stringWidth(text, font, size)
    if width > VALUE_MAX_WIDTH:
        size = size * VALUE_MAX_WIDTH / width
    canvas.setFont(font, size)
    canvas.drawString(x, y, text)


def _qr(canvas: Canvas, font: str, matrix: tuple[tuple[bool, ...], ...]) -> None:
    """The QR's dark modules as one filled path (no seams between modules when rasterised),
    bottom right, with its quiet zone kept white and a caption below."""
    modules = len(matrix)
    module = QR_SIZE / modules
    left = PAGE_WIDTH - MARGIN - 12 * mm - QR_SIZE
    bottom = MARGIN + 20 * mm
    top = bottom + QR_SIZE
    path = canvas.beginPath()
    for row_index, cells in enumerate(matrix):
        column = 0
        while column < modules:
            if not cells[column]:
                column += 1
                continue
            start = column
            while column < modules and cells[column]:
                column += 1
            y = top - (row_index + 1) * module
            path.rect(left + start * module, y, (column - start) * module, module)
    canvas.drawPath(path, stroke=0, fill=1)
    canvas.setFont(font, 9)
    centre = left + QR_SIZE / 2
    canvas.drawCentredString(centre, bottom - 6 * mm, "扫码核验证书真伪")
    canvas.setFont(font, 7)
    canvas.drawCentredString(centre, bottom - 10 * mm, "Scan to verify")


def _chinese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"
