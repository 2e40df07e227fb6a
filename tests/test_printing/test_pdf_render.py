"""The printed sheet: A4 landscape, the CJK font embedded, the QR scannable at print size."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from PIL import Image

from printing.render import CertificateSheet, FontMissing, render_certificate_pdf
from test_printing.conftest import QR_TEXT
from test_printing.pdf_tools import rasterise, run
from verify.qrimage import build_qr, decode_image


def test_sheet_is_a4_landscape_with_only_embedded_fonts(
    sheet: CertificateSheet, tmp_path: Path
) -> None:
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(render_certificate_pdf(sheet))
    info = run("pdfinfo", pdf)
    assert re.search(r"^Pages:\s+1$", info.output, re.MULTILINE)
    assert "841.89 x 595.276 pts (A4)" in info.output
    fonts = run("pdffonts", pdf).output.splitlines()[2:]
    assert fonts, "no font in the PDF"
    for line in fonts:
        assert " yes yes yes " in line, f"font not embedded as a subset with a map: {line}"
    text = run("pdftotext", "-layout", pdf, "-").output
    for value in ("教师资格证书", sheet.holder_name, sheet.qualification_zh, sheet.subject_zh,
                  sheet.number, sheet.body_name, "2026年3月2日", "Mathematics"):  # fmt: skip
        assert value in text


def test_qr_in_the_rendered_page_decodes_to_the_certificate_text(
    sheet: CertificateSheet, tmp_path: Path
) -> None:
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(render_certificate_pdf(sheet))
    assert decode_image(rasterise(pdf, tmp_path / "page")) == QR_TEXT
    assert build_qr(QR_TEXT).version <= 10


def test_qr_is_at_least_25_mm(sheet: CertificateSheet, tmp_path: Path) -> None:
    """Measured on the rasterised page: the dark modules' bounding box, finder to finder."""
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(render_certificate_pdf(sheet))
    dpi = 100
    with Image.open(rasterise(pdf, tmp_path / "page", dpi)) as page:
        width, height = page.size
        right_half = page.convert("L").crop((width // 2, height // 2, width, height))
        box = right_half.point(lambda v: 255 if v < 64 else 0).getbbox()
    assert box is not None
    # The caption under the QR is grey-on-white text, smaller than the symbol: take the width.
    assert (box[2] - box[0]) * 25.4 / dpi >= 25


def test_long_values_still_print_whole(sheet: CertificateSheet, tmp_path: Path) -> None:
    long_body = "河南省郑州市金水区教育局教师资格认定指导中心（演示用很长的机构名称）"
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(render_certificate_pdf(dataclasses.replace(sheet, body_name=long_body)))
    assert long_body in run("pdftotext", "-raw", pdf, "-").output.replace("\n", "")


def test_same_fields_render_the_same_bytes(sheet: CertificateSheet) -> None:
    assert render_certificate_pdf(sheet) == render_certificate_pdf(sheet)


def test_missing_font_is_a_clear_error(sheet: CertificateSheet, tmp_path: Path) -> None:
    with pytest.raises(FontMissing, match="fonts-wqy-zenhei"):
        render_certificate_pdf(sheet, font_path=tmp_path / "none.ttc")
