"""The public side: QR codec, verification API and page, trust list. Imports nothing private."""
