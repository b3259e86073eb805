"""`conveyor-operator`: run the operator (kopf) for some namespaces or the whole cluster, serving `/healthz`,
`/readyz` and `/metrics` for the Deployment's probes and Prometheus (its own metrics: `_metrics`).

With leader election (the default, as the Helm chart runs two replicas), kopf runs only in the replica that holds
the leader Lease, which the operator's Deployment owns (so the Lease goes with an uninstall); see `_leader`.
Without it the operator runs kopf standalone, and exactly one replica must run (the chart then uses one replica
and the Recreate strategy).

Readiness: a standby is ready (it does what it should, and nothing routes requests to either replica). A replica
running kopf is ready only once kopf has had an answer from the API server, and while its requests are answered
(`_reach`). A leader whose kopf has had no answer for --unreachable-timeout steps back (`_leader`)."""

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
from conveyor_operator._leader import LeadershipLost, SteppedBack, lead, until_signalled
from conveyor_operator._metrics import leading
from conveyor_operator._reach import STEP_BACK_AFTER, ApiReach

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
        "--leader-election-owner",
        default=os.environ.get("CONVEYOR_OPERATOR_DEPLOYMENT") or None,
        metavar="DEPLOYMENT",
        help="the operator's own Deployment, in the Lease's namespace: it owns the Lease, so Kubernetes deletes the"
        " Lease with it (env CONVEYOR_OPERATOR_DEPLOYMENT, set by the Helm chart; default: no owner)",
    )
    parser.add_argument(
        "--lease-duration",
        type=int,
        default=int(os.environ.get("CONVEYOR_LEASE_DURATION") or 10),
        metavar="SECONDS",
        help="how long a crashed leader keeps the Lease before a standby takes over (default %(default)s)",
    )
    parser.add_argument(
        "--unreachable-timeout",
        type=float,
        default=float(os.environ.get("CONVEYOR_UNREACHABLE_TIMEOUT") or STEP_BACK_AFTER),
        metavar="SECONDS",
        help="how long the leader's kopf may have no answer from the API server before the leader gives its Lease"
        " up to a standby and exits (env CONVEYOR_UNREACHABLE_TIMEOUT; default %(default)s)",
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
    if not args.unreachable_timeout > 0:
        parser.error(f"--unreachable-timeout: expected a number of seconds > 0, got {args.unreachable_timeout}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Imported here, not at the top: importing it registers the handlers, which only running the operator wants.
    from conveyor_operator import _handlers  # noqa: F401

    try:
        asyncio.run(_serve(args, endpoint.hostname or "0.0.0.0", endpoint.port))
    except InvalidInput as e:
        parser.error(str(e))
    except (LeadershipLost, SteppedBack, ServiceUnavailable, AccessDenied) as e:
        logger.error("%s", e)
        sys.exit(1)
    except (asyncio.CancelledError, KeyboardInterrupt):
        logger.info("stopped before leading")


def readiness(state: str, reach: ApiReach) -> str | None:
    """/readyz: None when ready, else why not (see the module's docstring)."""
    if state in ("leading", "running"):
        return reach.readiness()
    return None if state.startswith("standby") else state


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    state = "starting"
    reach = ApiReach(step_back_after=args.unreachable_timeout)

    def on_state(new: str) -> None:
        nonlocal state
        state = new
        leading(new)

    async def run_kopf(stop: asyncio.Event) -> None:
        reach.started()
        await kopf.operator(
            standalone=True,
            clusterwide=args.all_namespaces,
            namespaces=args.namespace or (),
            stop_flag=stop,
            # kopf's login (`_handlers._login`) reports its requests' outcomes to `reach`.
            memo=kopf.Memo(reach=reach),
        )

    async with until_signalled():
        health = HealthServer(host, port, lambda: readiness(state, reach))
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
                step_back=reach.wait_step_back,
                owner=args.leader_election_owner,
            )
        finally:
            leading("stopped")
            await health.stop()
