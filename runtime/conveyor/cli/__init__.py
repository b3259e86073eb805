"""The `conveyor` command line (click): `demo` and `graph` here; `worker`, `ui`, `db` and `runs` join as their
parts land."""

from conveyor.cli._main import cli, main

__all__ = ["cli", "main"]
