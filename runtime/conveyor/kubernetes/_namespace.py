"""The namespace a conveyor process works in when it is not told: its pod's own, as the service account's mounted
token says, so a worker or tool run in a cluster acts where it runs; "default" (kubectl's) outside one."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Final

SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace() -> str:
    """The pod's own namespace when run in a cluster, else "default"."""
    with contextlib.suppress(OSError):
        found = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if found:
            return found
    return "default"
