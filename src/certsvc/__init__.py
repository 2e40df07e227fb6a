"""certsvc: tokenised personal data, USBKey-controlled signing and public QR verification
for teacher-qualification certificates."""

__version__ = "0.1.0"
