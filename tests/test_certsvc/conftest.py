"""The console's browser fixtures for this folder's tests (`console_support`)."""

from console_support import browser, demo_server, page, server  # noqa: F401 (fixtures)
