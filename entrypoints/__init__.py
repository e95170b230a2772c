"""Entrypoints: settings, the container, the Litestar apps and the CLI."""
