"""`conveyor worker`: the process every worker pod runs. It loads the user's workflow from `module:attribute`,
refuses to start when the code's steps and the manifest's differ (so a Workflow whose image and manifest drifted
apart fails loudly instead of half-working; the message also goes to the pod's termination message, from where
the operator shows it on the Workflow as Degraded/CodeMismatch), builds it on Postgres + Kafka + Lease adapters
with the manifest's options over the code's, runs exactly one role (one shard of one step) or the system roles
(which also publish the graph into the Workflow's status), serves `/healthz`, `/readyz` and `/metrics`, and on
SIGTERM lets the current event finish, releases its Lease and exits.

Typed at a terminal, a database that cannot be reached or is not migrated is an error at once (exit 1). In a pod
(`--wait-for-store`, which the operator sets) the worker serves /healthz and keeps trying to open the record store,
/readyz answering 503 with the reason, until the database is up and migrated: otherwise a worker started before
its database exits, and Kubernetes' back-off (up to 5 minutes) keeps it down long after the database is back. What
waiting cannot fix still exits at once: a code that does not match the manifest, bad arguments, any other error.

Shard roles are fenced: a step's roles are named with its shard count, so when the count changes, workers of the
old count and of the new one hold different Leases. The engine tells a role scheduler that can fence (the Lease
scheduler, `FencingRoleScheduler`) which roles are shards of which step or connector, and the scheduler holds such
a role only while no shard of the group with another count holds its Lease. While fenced, /readyz says "waiting
for shards of n=2 to stop". The worker picks its roles from the processes the engine publishes
(`Workflow.processes()`), never by making role names itself.

The operator creates Deployments that run exactly this command line, so its flags and environment variables are
an interface: change them only together with the operator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from prometheus_client import REGISTRY

from conveyor._engine.roles import ProcessInfo, ProcessKind
from conveyor._engine.workflow import Workflow
from conveyor.cli._load import load_builder
from conveyor.cli._manifest import ManifestError, mismatch, parse_steps, step_options
from conveyor.cli._stores import STORE_RETRY_SECONDS, open_when_ready
from conveyor.errors import ConveyorError, InvalidInput, InvalidWorkflow
from conveyor.health import HealthServer
from conveyor.kubernetes import CODE_MISMATCH, TERMINATION_LOG, default_namespace, write_termination_message

if TYPE_CHECKING:
    from conveyor.adapters.kubernetes import LeaseRoleScheduler

logger = logging.getLogger("conveyor.worker")

# How long a stopping worker lets its current events finish before it cancels them: inside Kubernetes' default
# termination grace period (30 s), leaving time to release the Lease and close the connections.
STOP_GRACE = 20.0
ROLE_HELD_METRIC = "conveyor_role_held"


def step_processes(wf: Workflow[Any, Any]) -> list[ProcessInfo]:
    """The workflow's step consumers (every shard of every step), with the options in force."""
    return [p for p in wf.processes() if p.kind == ProcessKind.STEP_CONSUMER]


def choose_roles(wf: Workflow[Any, Any], step: str | None, shard: int | None, system: bool) -> list[str]:
    """The roles this worker runs: shard `shard` of step `step`, or (`system`) every process that is not a step
    consumer: outbox relay, timeouts, connectors, hooks, data deletion, paused-run retry, the stranded-runs check,
    the WorkflowRun mirror."""
    if system:
        return [p.role for p in wf.processes() if p.kind != ProcessKind.STEP_CONSUMER]
    assert step is not None and shard is not None
    consumers = step_processes(wf)
    of_step = [p for p in consumers if p.status is not None and p.status.name == step]
    if not of_step:
        steps = ", ".join(dict.fromkeys(p.status.name for p in consumers if p.status is not None))
        raise click.BadParameter(
            f"{step!r} is not a step of workflow {wf.name!r}; its steps: {steps}", param_hint="--step"
        )
    chosen = [p for p in of_step if p.shard is not None and p.shard.index == shard]
    if not chosen:
        shards = len(of_step)
        raise click.BadParameter(
            f"{shard} is outside 1..{shards}: step {step} has {shards} shard(s) (its parallelCount)",
            param_hint="--shard",
        )
    return [chosen[0].role]


def parse_kafka_config(text: str | None) -> dict[str, Any] | None:
    """--kafka-config as a dict. It may hold passwords: a refusal never repeats the text."""
    if text is None or not text.strip():
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(
            f"expected a JSON object of librdkafka settings ({e.msg} at character {e.pos})", param_hint="--kafka-config"
        ) from None
    if not isinstance(parsed, dict):
        kind = "array" if isinstance(parsed, list) else "value that is not an object"
        raise click.BadParameter(
            f"expected a JSON object of librdkafka settings, got a JSON {kind}", param_hint="--kafka-config"
        )
    return parsed


def build_workflow(
    entrypoint: str,
    paths: tuple[str, ...],
    steps: str | None,
    *,
    dsn: str,
    kafka: str,
    partitions: int,
    namespace: str,
    lease_duration: int,
    identity: str | None,
    debug: bool,
    termination_log: Path | None = None,
    kafka_config: dict[str, Any] | None = None,
) -> tuple[Workflow[Any, Any], LeaseRoleScheduler]:
    """Load, check against the manifest, and build on the real adapters (nothing is connected yet) with the
    manifest's options over the code's; the workflow and its Lease scheduler. A manifest that does not match the
    code is also said in `termination_log`, for the operator to show on the Workflow."""
    manifest = None
    if steps is not None and steps.strip():
        try:
            manifest = parse_steps(steps)
        except ManifestError as e:
            raise click.BadParameter("\n".join(e.problems), param_hint="--steps") from None
    builder = load_builder(entrypoint, paths)
    try:
        spec = builder.spec()
    except InvalidWorkflow as e:
        raise click.UsageError(str(e)) from None
    if manifest is not None:
        problem = mismatch(spec, manifest)
        if problem is not None:
            write_termination_message(termination_log, f"{CODE_MISMATCH}: {problem}")
            raise click.UsageError(problem)
    try:
        from conveyor.adapters.kafka import KafkaStreamer
        from conveyor.adapters.kubernetes import LeaseRoleScheduler
        from conveyor.adapters.postgres import PostgresRecordStore, PostgresTimeoutStore
    except ImportError as e:
        raise click.UsageError(f"a worker needs conveyor's postgres, kafka and kubernetes extras ({e})") from None
    try:
        roles = LeaseRoleScheduler(
            namespace, lease_duration=timedelta(seconds=lease_duration), identity=identity or None
        )
        wf = builder.build(
            KafkaStreamer(kafka, partitions=partitions, client_config=kafka_config),
            PostgresRecordStore(dsn),
            roles,
            timeout_store=PostgresTimeoutStore(dsn) if spec.timeouts else None,
            debug=debug,
            step_options=step_options(spec, manifest) if manifest is not None else None,
        )
    except InvalidInput as e:
        raise click.UsageError(str(e)) from None
    return wf, roles


@click.command()
@click.argument("entrypoint")
@click.option("--path", "paths", multiple=True, default=(".",), show_default=True, help="Import path (repeatable).")
@click.option(
    "--step", metavar="STATUS_NAME", help="Run a consumer of this step (its from-status name); needs --shard."
)
@click.option("--shard", type=click.IntRange(min=1), metavar="K", help="Which shard of --step: 1..its parallelCount.")
@click.option(
    "--system", is_flag=True, help="Run every role that is not a step consumer: outbox relay, timeouts, hooks, ..."
)
@click.option("--steps", envvar="CONVEYOR_STEPS", show_envvar=True, help="The Workflow manifest's spec.steps (JSON).")
@click.option("--dsn", envvar="CONVEYOR_PG_DSN", show_envvar=True, required=True, help="PostgreSQL DSN.")
@click.option("--kafka", envvar="CONVEYOR_KAFKA", show_envvar=True, required=True, help="Kafka bootstrap servers.")
@click.option(
    "--kafka-config",
    envvar="CONVEYOR_KAFKA_CONFIG",
    show_envvar=True,
    help='librdkafka settings for every Kafka client, as a JSON object (e.g. {"security.protocol": "SASL_SSL", '
    '"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "...", "sasl.password": "..."}).',
)
@click.option(
    "--partitions",
    envvar="CONVEYOR_KAFKA_PARTITIONS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Partitions of the topics the workflow creates.",
)
@click.option(
    "--namespace",
    envvar="CONVEYOR_NAMESPACE",
    show_envvar=True,
    help="Namespace of the Leases (default: the pod's own, else 'default').",
)
@click.option(
    "--lease-duration",
    envvar="CONVEYOR_LEASE_DURATION",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Seconds a crashed worker keeps its role.",
)
@click.option("--identity", envvar="POD_NAME", show_envvar=True, help="Lease holder identity.")
@click.option(
    "--port",
    envvar="CONVEYOR_PORT",
    show_envvar=True,
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="HTTP port for /healthz, /readyz and /metrics.",
)
@click.option(
    "--host", envvar="CONVEYOR_HOST", show_envvar=True, default="0.0.0.0", show_default=True, help="HTTP address."
)
@click.option("--debug", envvar="CONVEYOR_DEBUG", show_envvar=True, is_flag=True, help="Log every decision.")
@click.option(
    "--termination-log",
    envvar="CONVEYOR_TERMINATION_LOG",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=TERMINATION_LOG,
    show_default=True,
    help="Where to say why the worker refuses to start (written only if the file exists, as in a pod).",
)
@click.option(
    "--workflow-object",
    envvar="CONVEYOR_WORKFLOW",
    show_envvar=True,
    help="Name of the Workflow object (default: the code's workflow name); the system worker puts the graph into "
    "its status.",
)
@click.option(
    "--wait-for-store",
    envvar="CONVEYOR_WAIT_FOR_STORE",
    show_envvar=True,
    is_flag=True,
    help=f"Start even while the database cannot be reached or is not migrated yet, trying again every "
    f"{STORE_RETRY_SECONDS:g} s (/readyz answers 503 with the reason meanwhile). For pods; the operator sets it.",
)
def worker(
    entrypoint: str,
    paths: tuple[str, ...],
    step: str | None,
    shard: int | None,
    system: bool,
    steps: str | None,
    dsn: str,
    kafka: str,
    kafka_config: str | None,
    partitions: int,
    namespace: str | None,
    lease_duration: int,
    identity: str | None,
    port: int,
    host: str,
    debug: bool,
    termination_log: Path,
    workflow_object: str | None,
    wait_for_store: bool,
) -> None:
    """Run one role of a workflow (a step's shard, or the system roles) on Postgres, Kafka and Kubernetes Leases,
    serving /healthz, /readyz and /metrics. SIGTERM stops it cleanly."""
    if system and (step is not None or shard is not None):
        raise click.UsageError("give one role: either --step NAME --shard K, or --system, not both")
    if not system and (step is None or shard is None):
        if step is None and shard is None:
            raise click.UsageError("give one role: --step NAME --shard K, or --system")
        raise click.UsageError("--shard K needs --step NAME" if step is None else "--step NAME needs --shard K")
    wf, scheduler = build_workflow(
        entrypoint,
        paths,
        steps,
        dsn=dsn,
        kafka=kafka,
        kafka_config=parse_kafka_config(kafka_config),
        partitions=partitions,
        namespace=namespace or default_namespace(),
        lease_duration=lease_duration,
        identity=identity,
        debug=debug,
        termination_log=termination_log,
    )
    if system:
        from conveyor.kubernetes import add_workflowrun_mirror

        add_workflowrun_mirror(wf, namespace or default_namespace(), workflow_object=workflow_object)
    roles = choose_roles(wf, step, shard, system)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settle_heap()
    asyncio.run(serve(wf, roles, host=host, port=port, fenced=scheduler.fenced, wait_for_store=wait_for_store))


# The collector's thresholds for a worker: a young-generation pass every 10,000 allocations instead of 700. Each
# event allocates a few hundred short-lived objects; with the default, passes ran every few events and cost about
# a tenth of the engine's CPU per transition (bench/engine.py: 30.8-31.1 against 27.4-27.5 us).
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Once set-up is done: what imports and set-up made lives as long as the process, so it is kept out of the
    collector's full passes, which otherwise walk it again and again (10-25 us of every transition under load,
    and the p99's longest pauses); and the young generation is collected less often (GC_THRESHOLDS)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class _Worker:
    """What /readyz reports: not ready while starting or stopping, or while a shard fence holds a role back;
    ready when running, holding its roles or standing by for them (conveyor_role_held says which)."""

    def __init__(
        self, wf: Workflow[Any, Any], roles: list[str], fenced: Callable[[str], str | None] | None = None
    ) -> None:
        self.wf = wf
        self.roles = roles
        self.fenced = fenced
        self.phase = "starting"

    def why_not_ready(self) -> str | None:
        if self.phase != "running":
            return self.phase
        waiting = [
            role
            for role in self.roles
            if REGISTRY.get_sample_value(ROLE_HELD_METRIC, {"workflow_name": self.wf.name, "role": role}) != 1
        ]
        for role in waiting:
            why = self.fenced(role) if self.fenced is not None else None
            if why is not None:
                return f"{why} (role {role})"
        # A worker waiting for a role another replica holds is a hot standby: ready, so that a shard with
        # replicasPerShard > 1 counts as ready and takes over as soon as the holder goes.
        return None


async def _start(wf: Workflow[Any, Any], roles: list[str], state: _Worker, wait_for_store: bool) -> None:
    """`wf.run(roles)`; with `wait_for_store`, once its record store opens (the reason it does not yet is /readyz's).
    The store stays open here until run() holds its own open of it (opens are counted), so the pool that answered
    is the one the worker uses."""
    if not wait_for_store:
        await wf.run(roles=roles)
        return

    def waiting(why: str) -> None:
        state.phase = f"waiting for the record store: {why}"

    def say(level: int, line: str) -> None:
        logger.log(level, "%s", line)

    await open_when_ready(wf.store, say, waiting=waiting)
    try:
        state.phase = "opening adapters"
        await wf.run(roles=roles)
    finally:
        await wf.store.close()


async def serve(
    wf: Workflow[Any, Any],
    roles: list[str],
    *,
    host: str,
    port: int,
    fenced: Callable[[str], str | None] | None = None,
    wait_for_store: bool = False,
) -> None:
    """Run `roles` of `wf` until SIGTERM or SIGINT, then stop cleanly; a second signal exits at once.
    `wait_for_store`: see the module's docstring."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting at once (held Leases expire on their own)", signal.Signals(signum).name)
            os._exit(128 + signum)
        logger.info("%s: finishing current events, releasing roles", signal.Signals(signum).name)
        stop.set()

    state = _Worker(wf, roles, fenced)
    health = HealthServer(host, port, state.why_not_ready)
    try:
        await health.start()
    except OSError as e:
        raise click.ClickException(f"cannot serve HTTP on {host}:{port}: {e.strerror or e}") from None
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        state.phase = "opening adapters"
        starting = asyncio.ensure_future(_start(wf, roles, state, wait_for_store))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not starting.done():
            starting.cancel()  # stopped while connecting: whatever was opened is closed again by run()
            with contextlib.suppress(BaseException):
                await starting
            return
        try:
            starting.result()
        except ConveyorError as e:
            raise click.ClickException(str(e)) from None
        state.phase = "running"
        logger.info(
            "workflow %s: running %s; HTTP on %s:%d (/healthz, /readyz, /metrics)",
            wf.name,
            ", ".join(roles) or "no role",
            host,
            port,
        )
        await stop.wait()
        state.phase = "stopping"
        await wf.stop(grace=STOP_GRACE)
        logger.info("workflow %s: stopped", wf.name)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await health.stop()
