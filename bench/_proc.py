"""The CPU time of the processes a bench involves besides itself: a service found by the port it listens on (Postgres,
the Kafka broker, the API server) or by its name (etcd), each counted with its descendants, through psutil.

A process tree's CPU is each live process's own user + system time plus what its reaped children spent (Postgres's
postmaster reaps the backends of closed connections, so their CPU is not lost when a pool closes a connection).
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlparse

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every descendant, live or reaped; 0 for a process that is gone."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def listening_pid(port: int) -> int:
    """The process listening on TCP `port` on this machine; LookupError when none is (or it is not ours to see)."""
    for connection in psutil.net_connections(kind="tcp"):
        pid, listening = connection.pid, connection.status == psutil.CONN_LISTEN
        if listening and pid is not None and connection.laddr and connection.laddr.port == port:
            return pid
    raise LookupError(f"no process of this machine that we may inspect listens on port {port}")


def named_pid(name: str) -> int:
    """The oldest process named `name` (a service's main process precedes any helper of the same name)."""
    found = [p for p in psutil.process_iter(["name", "create_time"]) if p.info["name"] == name]
    if not found:
        raise LookupError(f"no process named {name!r} runs on this machine")
    return min(found, key=lambda p: float(p.info["create_time"])).pid


def postgres_pid(dsn: str) -> int:
    """The postmaster of the Postgres server `dsn` names (it must run on this machine)."""
    return listening_pid(urlparse(dsn).port or 5432)


def kafka_pid(bootstrap: str) -> int:
    """The broker listening at the first address of a bootstrap list (host:port,...)."""
    return listening_pid(int(bootstrap.split(",")[0].rsplit(":", 1)[1]))
