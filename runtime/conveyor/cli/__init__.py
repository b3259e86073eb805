"""The `conveyor` command line (click): `demo`, `graph`, `db migrate` and `worker`; `ui` and `runs` join as their
parts land."""

from conveyor.cli._main import cli, main

__all__ = ["cli", "main"]
