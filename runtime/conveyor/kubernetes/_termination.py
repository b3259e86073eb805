"""The termination message: how a worker tells the operator why it exits. The worker writes it to its container's
terminationMessagePath (which the operator sets on every worker container), the kubelet copies it into the pod's
status, and the operator reads it there: a message that starts with "CodeMismatch: " makes the Workflow Degraded
with that reason and the rest of the message."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

logger = logging.getLogger("conveyor.kubernetes")

# Where Kubernetes looks by default, and what the operator sets as each worker container's terminationMessagePath.
TERMINATION_LOG: Final = Path("/dev/termination-log")
# The most the kubelet keeps of a termination message, in bytes.
TERMINATION_MESSAGE_LIMIT: Final = 4096
# A worker whose code does not match the Workflow manifest's steps writes f"{CODE_MISMATCH}: {why}"; the operator
# looks for that prefix and uses it as the Degraded condition's reason.
CODE_MISMATCH: Final = "CodeMismatch"


def write_termination_message(path: str | os.PathLike[str] | None, message: str) -> None:
    """Say why the process exits where Kubernetes looks (the container's terminationMessagePath): the kubelet copies
    it into the pod's status, where the operator reads it. Only into a file that exists (the kubelet mounts it), so
    a process run by hand writes nothing; at most the TERMINATION_MESSAGE_LIMIT bytes the kubelet keeps, cut at a
    character boundary. A file that cannot be written is logged, never raised: the exit it explains goes on."""
    if path is None:
        return
    path = Path(path)
    if not path.is_file():
        return
    data = message.encode()[:TERMINATION_MESSAGE_LIMIT].decode(errors="ignore")
    try:
        path.write_text(data)
    except OSError as e:
        logger.warning("cannot write the termination message to %s: %s", path, e)
