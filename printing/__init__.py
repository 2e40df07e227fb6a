"""Printable certificates: the A4 sheet a holder receives, with its QR, as a PDF."""
