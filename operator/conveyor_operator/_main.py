"""`conveyor-operator`: run the operator (kopf) for some namespaces or the whole cluster, serving `/healthz`,
`/readyz` and `/metrics` for the Deployment's probes and Prometheus (its own metrics: `_metrics`).

With leader election (the default, as the Helm chart runs two replicas), kopf runs only in the replica that holds
the leader Lease; see `_leader`. Without it the operator runs kopf standalone, and exactly one replica must run
(the chart then uses one replica and the Recreate strategy)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import kopf

from conveyor.errors import AccessDenied, InvalidInput, ServiceUnavailable
from conveyor.health import HealthServer
from conveyor_operator._leader import LeadershipLost, lead, until_signalled
from conveyor_operator._metrics import leading

logger = logging.getLogger("conveyor_operator")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _own_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor-operator", description="Run the conveyor Kubernetes operator.")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve Workflows in every namespace")
    scope.add_argument(
        "--namespace", "-n", action="append", metavar="NS", help="serve Workflows in NS (repeat for more; globs ok)"
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        metavar="URL",
        help="where /healthz, /readyz and /metrics are served: host and port of this URL (default %(default)s)",
    )
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("CONVEYOR_LEADER_ELECTION", True),
        help="run kopf only while holding the leader Lease (env CONVEYOR_LEADER_ELECTION; default on)",
    )
    parser.add_argument(
        "--leader-election-lease",
        default=os.environ.get("CONVEYOR_LEADER_ELECTION_LEASE") or "conveyor-operator-leader",
        metavar="NAME",
        help="the Lease the replicas compete for (env CONVEYOR_LEADER_ELECTION_LEASE; default %(default)s)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=None,
        metavar="NS",
        help="the Lease's namespace (default: $POD_NAMESPACE, else the pod's own, else default)",
    )
    parser.add_argument(
        "--lease-duration",
        type=int,
        default=int(os.environ.get("CONVEYOR_LEASE_DURATION") or 10),
        metavar="SECONDS",
        help="how long a crashed leader keeps the Lease before a standby takes over (default %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="log every kopf decision")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    endpoint = urlsplit(args.liveness)
    if endpoint.port is None:
        parser.error(f"--liveness: expected a URL with a port, like http://0.0.0.0:8080/healthz, got {args.liveness!r}")
    if args.lease_duration < 1:
        parser.error(f"--lease-duration: expected a whole number of seconds >= 1, got {args.lease_duration}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Imported here, not at the top: importing it registers the handlers, which only running the operator wants.
    from conveyor_operator import _handlers  # noqa: F401

    try:
        asyncio.run(_serve(args, endpoint.hostname or "0.0.0.0", endpoint.port))
    except InvalidInput as e:
        parser.error(str(e))
    except (LeadershipLost, ServiceUnavailable, AccessDenied) as e:
        logger.error("%s", e)
        sys.exit(1)
    except (asyncio.CancelledError, KeyboardInterrupt):
        logger.info("stopped before leading")


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    state = "starting"

    def readiness() -> str | None:
        # A standby is ready too: it is doing what it should, and nothing routes requests to either replica.
        return None if state in ("leading", "running") or state.startswith("standby") else state

    def on_state(new: str) -> None:
        nonlocal state
        state = new
        leading(new)

    async def run_kopf(stop: asyncio.Event) -> None:
        await kopf.operator(
            standalone=True,
            clusterwide=args.all_namespaces,
            namespaces=args.namespace or (),
            stop_flag=stop,
        )

    async with until_signalled():
        health = HealthServer(host, port, readiness)
        await health.start()
        leading(state)
        try:
            if not args.leader_election:
                on_state("running")
                await run_kopf(asyncio.Event())
                return
            await lead(
                run_kopf,
                lease=args.leader_election_lease,
                namespace=args.leader_election_namespace or _own_namespace(),
                lease_duration=timedelta(seconds=args.lease_duration),
                identity=os.environ.get("POD_NAME") or None,
                on_state=on_state,
            )
        finally:
            leading("stopped")
            await health.stop()
