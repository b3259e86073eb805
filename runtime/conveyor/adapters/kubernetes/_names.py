"""Lease names for roles. A Lease's name must be an RFC 1123 DNS subdomain (lowercase letters, digits, '-' and
'.', at most 253 characters, starting and ending with a letter or digit), but a role may be anything the engine
makes: a schedule role carries its cron spec ("0 2 * * *"), a workflow name may hold '_' or capitals.

A role that already is a valid name is used as it is, so `kubectl get leases` reads like the engine's logs.
Any other role is made safe (invalid runs of characters become '-', the result is cut to fit) and gets a short
hash of the exact role appended, so two roles never share a Lease. The exact role is always kept on the Lease
in the `conveyor.dev/role` annotation."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 253
_VALID = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_UNSAFE = re.compile(r"[^a-z0-9.-]+")
_HASH_CHARS = 10


def is_valid_name(name: str) -> bool:
    """True if `name` is a valid Lease (DNS subdomain) name."""
    return len(name) <= MAX_NAME and _VALID.match(name) is not None and ".." not in name


def lease_name(role: str) -> str:
    """The Lease that holds `role`: the role itself when that is a valid name, else a safe name plus a hash."""
    if is_valid_name(role):
        return role
    digest = hashlib.sha256(role.encode()).hexdigest()[:_HASH_CHARS]
    safe = _UNSAFE.sub("-", role.lower())
    safe = re.sub(r"[-.]{2,}", "-", safe).strip("-.")
    safe = safe[: MAX_NAME - _HASH_CHARS - 1].rstrip("-.")
    return f"{safe}-{digest}" if safe else digest
