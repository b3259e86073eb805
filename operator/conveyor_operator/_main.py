"""`conveyor-operator`: run the operator (kopf) for some namespaces or the whole cluster, with a liveness endpoint
for the Deployment's probe.

It runs standalone (no kopf peering): kopf's peering only freezes equal-priority replicas, it is no leader
election, so the chart runs one replica with the Recreate strategy until the operator elects a leader itself.
"""

from __future__ import annotations

import argparse
import logging

import kopf


def main(argv: list[str] | None = None) -> None:
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
        help="where kopf answers liveness probes (default %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="log every kopf decision")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Imported here, not at the top: importing it registers the handlers, which only running the operator wants.
    from conveyor_operator import _handlers  # noqa: F401

    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
    )
