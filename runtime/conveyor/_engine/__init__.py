"""The workflow engine: the builder, the run, and the processes that move runs from status to status.

It talks to the outside world only through the protocols of `conveyor._core.ports`; it imports no adapter.
"""
