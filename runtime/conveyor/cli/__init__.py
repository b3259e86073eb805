"""The `conveyor` command line (click): `demo`, `graph`, `db migrate`, `worker` and `runs`; `ui` joins as its part
lands."""

from conveyor.cli._main import cli, main

__all__ = ["cli", "main"]
