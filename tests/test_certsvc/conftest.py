"""The console tests' browser and server (`console_browser`)."""

from console_browser import page, server

__all__ = ["page", "server"]
