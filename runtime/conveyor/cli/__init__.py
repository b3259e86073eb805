"""The `conveyor` command line (click): `demo`, `graph`, `db migrate`, `worker`, `runs` and `ui`."""

from conveyor.cli._main import cli, main

__all__ = ["cli", "main"]
