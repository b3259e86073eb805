"""The deployed shape against the single process: the bench workload run as the operator deploys it, on Postgres +
Kafka, with every role held through a Kubernetes Lease, and the same workload in one process.

The deployed shape is one `conveyor worker` process per role, as the operator's Deployments run them: one per shard
of each of the workload's 3 steps (`--parallel` shards each) and the system worker (outbox relay, the WorkflowRun
mirror, the stranded-runs check), their roles held through Leases on the project's control plane (scripts/kube.sh),
and runs triggered from this process through the public `conveyor.Client`. The single-process shape is
bench/throughput.py's: every role in this process (`Workflow.trigger`, in-process hand-off between steps).

For each shape it prints, in one JSON line and a table:
- full load: runs/s and transitions/s for `--runs` runs triggered at once (after the same load once, unmeasured, so
  neither shape meets a cold broker, cold caches or workers still starting), and the CPU per transition summed over
  every process involved (the workers or this process, Postgres (every backend), the Kafka broker, the API server and
  etcd; read from /proc through psutil), per process group too; the deployed transitions/s over the
  single-process one (target >= 0.8);
- latency against offered load: trigger-to-completed p50 and p99 at `--rates` rates from 1% to 90% of the shape's
  measured maximum (and at 36 runs/s, where our peers were compared: targets p50 <= 5 ms, p99 <= 15 ms), with the
  median time of each hop (trigger -> first step stored -> second -> third) and the knee of the curve; drawn as a
  PNG (`--png`);
- at the rate nearest 36 runs/s, each hop split where its event was published (bench/_hops.py);
- at rest: the CPU every process spends per second over `--rest` seconds with no load, once the shape is up and
  warm (what a quiet deployment costs: consumers' fetches, Lease renewals, polls), per process group too.
pgbench's single-row commit rate on the same Postgres (1 client, and one per step shard) follows, as context.

    python bench/deployed.py [--runs 2000] [--parallel 4] [--seconds 5] [--rates 10] [--rest 10] [--png PATH]
                             [--keep-logs]

Uses $CONVEYOR_PG_DSN, $CONVEYOR_KAFKA and $KUBECONFIG, or starts the services with scripts/postgres.sh,
scripts/kafka.sh and scripts/kube.sh. Removes what it made: the runs' rows, the topics, the Leases, the worker logs
(unless --keep-logs or a worker failed) and conveyor's CRDs if it had to install them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

import _flags
from _hops import split
from _load import PEER_RATE, Point, at_rate, drain, knee, latencies, offer, offered_rates, plot, point, table
from _proc import kafka_pid, listening_pid, named_pid, postgres_pid, tree_cpu_seconds
from _services import script_says, service
from _workload import PARALLEL_VARIABLE, TRANSITIONS_PER_RUN, WORKFLOW_VARIABLE, Stage, builder
from conveyor import Client
from conveyor.cli._worker import settle_heap
from throughput import pgbench, remove, warm_up
from throughput import workflow as single_process_workflow

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
NAMESPACE = "default"
STEPS = [s.name for s in (Stage.RECEIVED, Stage.CHECKED, Stage.PRICED)]
DRAIN_TIMEOUT = 300.0


class Kube:
    """kubectl on the control plane the workers hold their Leases on ($KUBECONFIG, or scripts/kube.sh's)."""

    def __init__(self) -> None:
        self.config = os.environ.get("KUBECONFIG") or service("kube.sh", "KUBECONFIG")
        self.kubectl = str(Path(script_says("kube.sh", "bin", "KUBE_BIN")) / "kubectl")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": self.config}
        return subprocess.run([self.kubectl, *args], env=env, capture_output=True, text=True, check=check)

    def server_port(self) -> int:
        server = self.run("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        return urlparse(server.strip()).port or 443

    @contextlib.contextmanager
    def crds(self) -> Iterator[None]:
        """conveyor's CRDs, as the chart installs them (the system worker's WorkflowRun mirror lists WorkflowRuns);
        removed afterwards only when this bench installed them."""
        present = self.run("get", "crd", "workflowruns.conveyor.dev", check=False).returncode == 0
        if not present:
            self.run("apply", "-f", str(ROOT / "crds"))
            self.run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        try:
            yield
        finally:
            if not present:
                self.run("delete", "-f", str(ROOT / "crds"), check=False)

    def remove_leases(self, names: list[str]) -> None:
        """The Leases the workers of these workflows held (each role's Lease name starts with the workflow's)."""
        listed = self.run("get", "lease", "-n", NAMESPACE, "-o", "name").stdout.split()
        mine = [lease for lease in listed if any(lease.split("/", 1)[-1].startswith(f"{n}-") for n in names)]
        if mine:
            self.run("delete", "-n", NAMESPACE, "--ignore-not-found", *mine)


@dataclass(frozen=True)
class Services:
    """The services both shapes run on, shared by the whole bench run."""

    dsn: str
    kafka: str
    kube: Kube


def partitions(parallel: int) -> int:
    return max(6, parallel)  # as bench/throughput.py's workflow, so both shapes use the same topics


# -- CPU across processes ----------------------------------------------------------------------------------------


def control_plane_pids(kube: Kube) -> dict[str, int]:
    """The API server (the process listening on the kubeconfig's port) and etcd (found by name), when local."""
    found: dict[str, int] = {}
    with contextlib.suppress(LookupError):
        found["kube-apiserver"] = listening_pid(kube.server_port())
    with contextlib.suppress(LookupError):
        found["etcd"] = named_pid("etcd")
    return found


class Meter:
    """CPU seconds of named groups of processes; this process is read from getrusage (every thread of it)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def read(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        found = {"bench process": usage.ru_utime + usage.ru_stime}
        for name, pids in self.groups.items():
            found[name] = sum(tree_cpu_seconds(pid) for pid in pids)
        return found


def services_meter(services: Services, workers: dict[str, list[int]]) -> Meter:
    groups = {**workers, "postgres": [postgres_pid(services.dsn)], "kafka broker": [kafka_pid(services.kafka)]}
    groups.update({name: [pid] for name, pid in control_plane_pids(services.kube).items()})
    return Meter(groups)


# -- the deployed shape -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    """One `conveyor worker` per role of the workflow `name`, started as the operator's Deployments start them."""

    def __init__(self, name: str, parallel: int, services: Services, logs: Path) -> None:
        self.name, self.logs = name, logs
        env = {**os.environ, WORKFLOW_VARIABLE: name, PARALLEL_VARIABLE: str(parallel)}
        env.update({"KUBECONFIG": services.kube.config, "CONVEYOR_NAMESPACE": NAMESPACE})
        env.update({"CONVEYOR_PG_DSN": services.dsn, "CONVEYOR_KAFKA": services.kafka})
        self._env = env
        roles = [["--system"]] + [["--step", s, "--shard", str(k)] for s in STEPS for k in range(1, parallel + 1)]
        self.roles = {("system" if r == ["--system"] else f"{r[1]}-{r[3]}"): r for r in roles}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self._partitions = partitions(parallel)

    def start(self) -> None:
        conveyor = Path(sys.executable).with_name("conveyor")
        for role, args in self.roles.items():
            self.ports[role] = port = free_port()
            command = [str(conveyor), "worker", "_workload:deployed", "--path", str(BENCH), *args]
            command += ["--port", str(port), "--host", "127.0.0.1", "--partitions", str(self._partitions)]
            command += ["--identity", f"{self.name}-{role}"]
            with (self.logs / f"{role}.log").open("wb") as log:
                self.processes[role] = subprocess.Popen(command, env=self._env, stdout=log, stderr=subprocess.STDOUT)

    def failed(self) -> str | None:
        for role, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.logs / f"{role}.log").read_text(errors="replace").splitlines()[-20:]
                return f"worker {role} exited with {process.returncode}:\n" + "\n".join(tail)
        return None

    async def ready(self, timeout: float = 120.0) -> None:
        """Every worker answers /readyz with 200 (its store reached, its processes started)."""
        deadline = time.monotonic() + timeout
        waiting = set(self.roles)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while waiting:
                if (why := self.failed()) is not None:
                    raise RuntimeError(why)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"workers not ready after {timeout:g} s: {sorted(waiting)}")
                for role in list(waiting):
                    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                        async with session.get(f"http://127.0.0.1:{self.ports[role]}/readyz") as answer:
                            if answer.status == 200:
                                waiting.discard(role)
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def pids(self) -> dict[str, list[int]]:
        return {
            "system worker": [self.processes["system"].pid],
            "step workers": [p.pid for role, p in self.processes.items() if role != "system"],
        }


# -- measuring ----------------------------------------------------------------------------------------------------


async def full_load(
    trigger: Callable[[str], Awaitable[str]], pool: Any, name: str, runs: int, meter: Meter
) -> dict[str, Any]:
    """`runs` runs triggered at once, timed until every one has completed, with the CPU every process spent.

    The same load goes once before, unmeasured. The shape measured first otherwise met a broker whose JVM had not
    compiled its hot paths yet: on a broker started minutes before, its CPU per transition came out at 310-395 us in
    the first runs and 105-170 us once warm, which moved the ratio by itself."""
    await _all_at_once(trigger, pool, name, runs, "unmeasured")
    before, started = meter.read(), time.perf_counter()
    await _all_at_once(trigger, pool, name, runs, "item")
    seconds, after = time.perf_counter() - started, meter.read()
    transitions = TRANSITIONS_PER_RUN * runs
    cpu = {group: (after[group] - before[group]) / transitions * 1e6 for group in after}
    return {
        "seconds": round(seconds, 2),
        "runs_per_second": round(runs / seconds, 1),
        "transitions_per_second": round(transitions / seconds, 1),
        "cpu_us_per_transition": round(sum(cpu.values()), 1),
        "cpu_us_per_transition_by_process": {group: round(us, 1) for group, us in cpu.items()},
    }


async def at_rest(meter: Meter, seconds: float) -> dict[str, Any]:
    """The CPU every process spends per second over `seconds` with nothing to do."""
    before, started = meter.read(), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed, after = time.perf_counter() - started, meter.read()
    cpu = {group: (after[group] - before[group]) / elapsed * 1e3 for group in after}
    return {
        "rest_cpu_ms_per_second": round(sum(cpu.values()), 1),
        "rest_cpu_ms_per_second_by_process": {group: round(ms, 1) for group, ms in cpu.items()},
    }


async def _all_at_once(trigger: Callable[[str], Awaitable[str]], pool: Any, name: str, runs: int, prefix: str) -> None:
    await asyncio.gather(*(trigger(f"{prefix}-{i}") for i in range(runs)))
    await drain(pool, name, DRAIN_TIMEOUT)


async def curve(
    trigger: Callable[[str], Awaitable[str]], pool: Any, kafka: str, name: str, maximum: float, args: argparse.Namespace
) -> dict[str, Any]:
    """The latency at each offered rate, and at the rate nearest the peers' each hop split where its event was
    published (bench/_hops.py)."""
    rates = offered_rates(maximum, args.rates)
    nearest = min(rates, key=lambda r: abs(r - PEER_RATE))
    points, hop_split = [], None
    for index, rate in enumerate(rates):
        run_ids = await offer(trigger, rate, args.seconds, f"rate{index}")
        await drain(pool, name, DRAIN_TIMEOUT)
        points.append(point(rate, await latencies(pool, run_ids)))
        if rate == nearest:
            found = await split(pool, kafka, name, run_ids)
            hop_split = {"offered_runs_per_second": rate, **(found.as_json() if found else {})}
    return {"points": points, "hop_split": hop_split}


async def deployed_shape(args: argparse.Namespace, services: Services, logs: Path, names: list[str]) -> dict[str, Any]:
    from conveyor.adapters.postgres import PostgresRecordStore

    name = f"bench-deployed-{uuid.uuid4().hex[:8]}"
    names.append(name)
    spec = builder(name, args.parallel).spec()
    deployment = Deployment(name, args.parallel, services, logs)
    deployment.start()
    try:
        await deployment.ready()
        store = PostgresRecordStore(services.dsn)
        async with Client(store, spec) as client:
            pool = store.pool

            async def trigger(foreign_id: str) -> str:
                return await client.trigger(spec, foreign_id)

            warm = [await trigger(f"warm-up-{i}") for i in range(24)]
            await drain(pool, name, DRAIN_TIMEOUT)
            await latencies(pool, warm)
            meter = services_meter(services, deployment.pids())
            rest = await at_rest(meter, args.rest)
            full = await full_load(trigger, pool, name, args.runs, meter)
            measured = await curve(trigger, pool, services.kafka, name, full["runs_per_second"], args)
        if (why := deployment.failed()) is not None:
            raise RuntimeError(why)
        return {"processes": len(deployment.processes), "full_load": full, "rest": rest, **measured}
    finally:
        deployment.stop()


async def single_process_shape(args: argparse.Namespace, services: Services, names: list[str]) -> dict[str, Any]:
    wf: Any = single_process_workflow(services.dsn, services.kafka, args.parallel)
    names.append(wf.name)
    async with wf:
        await warm_up(wf)
        meter = services_meter(services, {})
        rest = await at_rest(meter, args.rest)
        full = await full_load(wf.trigger, wf.store.pool, wf.name, args.runs, meter)
        measured = await curve(wf.trigger, wf.store.pool, services.kafka, wf.name, full["runs_per_second"], args)
    return {"processes": 1, "full_load": full, "rest": rest, **measured}


def summary(shape: dict[str, Any]) -> dict[str, Any]:
    points: list[Point] = shape["points"]
    peer = at_rate(points, PEER_RATE)
    return {
        "processes": shape["processes"],
        **shape["full_load"],
        **shape["rest"],
        "latency": [p.as_json() for p in points],
        "knee_runs_per_second": knee(points),
        "peer_rate_p50_ms": round(peer.p50_ms, 2) if peer else None,
        "peer_rate_p99_ms": round(peer.p99_ms, 2) if peer else None,
        "hop_split": shape["hop_split"],
    }


def report(result: dict[str, Any], curves: dict[str, list[Point]]) -> None:
    print(json.dumps(result))
    for shape in ("deployed", "single_process"):
        s = result[shape]
        print(f"{shape} ({s['processes']} process{'es' if s['processes'] > 1 else ''})")
        print(f"  {'runs/s':<28} {s['runs_per_second']}")
        print(f"  {'transitions/s':<28} {s['transitions_per_second']}")
        print(f"  {'CPU us/transition, all':<28} {s['cpu_us_per_transition']} (target <= 120)")
        for group, us in s["cpu_us_per_transition_by_process"].items():
            print(f"    {group:<26} {us}")
        print(
            f"  {'at 36 runs/s p50 / p99 ms':<28} {s['peer_rate_p50_ms']} / {s['peer_rate_p99_ms']} "
            "(targets <= 5 / <= 15)"
        )
        print(f"  {'CPU ms/s at rest, all':<28} {s['rest_cpu_ms_per_second']}")
        for group, ms in s["rest_cpu_ms_per_second_by_process"].items():
            print(f"    {group:<26} {ms}")
        if (hop := s["hop_split"]) and "decided_to_published_p50_ms" in hop:
            where = f"a hop at {hop['offered_runs_per_second']:g} runs/s, p50 ms"
            print(
                f"  {where:<28} {hop['decided_to_published_p50_ms']} decided -> published, "
                f"{hop['published_to_next_decided_p50_ms']} published -> next decided"
            )
    print(f"{'deployed / single-process transitions/s':<42} {result['ratio']} (target >= 0.8)")
    for shape, points in curves.items():
        print("\n".join(table(shape, points)))
    for clients, rate in result["pgbench_commits_per_second"].items():
        print(f"{f'pgbench, {clients} client(s), 1-row commits/s':<42} {rate} (context, not a target)")
    print(f"latency curve drawn in {result['png']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=_flags.count, default=2000, help="runs triggered at once for the full-load figures"
    )
    parser.add_argument("--parallel", type=_flags.count, default=4, help="shards of each step")
    parser.add_argument("--seconds", type=_flags.seconds, default=5.0, help="seconds of load at each offered rate")
    parser.add_argument("--rates", type=_flags.count, default=10, help="offered rates, from 1%% to 90%% of the maximum")
    parser.add_argument(
        "--rest", type=_flags.seconds, default=10.0, help="seconds at rest over which each shape's idle CPU is read"
    )
    parser.add_argument("--png", type=Path, default=ROOT / "artifacts" / "bench" / "deployed-latency.png")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs (printed where)")
    args = parser.parse_args()
    services = Services(service("postgres.sh", "CONVEYOR_PG_DSN"), service("kafka.sh", "CONVEYOR_KAFKA"), Kube())
    from conveyor.adapters.postgres import migrate

    asyncio.run(migrate(services.dsn))
    settle_heap()  # as `conveyor worker` does once its workflow is built, for the single-process shape here
    names: list[str] = []
    logs = Path(tempfile.mkdtemp(prefix="conveyor-bench-deployed-"))
    failed = False
    try:
        with services.kube.crds():
            deployed = asyncio.run(deployed_shape(args, services, logs, names))
            single = asyncio.run(single_process_shape(args, services, names))
        # Context, not a target: the commit rate this Postgres gives as many clients as there are step shards.
        clients = args.parallel * len(STEPS)
        commits = {clients: pgbench(services.dsn, 3.0, clients), 1: pgbench(services.dsn, 3.0, 1)}
    except BaseException:
        failed = True
        raise
    finally:
        asyncio.run(remove(services.dsn, services.kafka, names))
        services.kube.remove_leases(names)
        if args.keep_logs or failed:
            print(f"worker logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(logs)
    curves = {"deployed": deployed["points"], "single process": single["points"]}
    plot(
        curves,
        {
            "deployed": deployed["full_load"]["runs_per_second"],
            "single process": single["full_load"]["runs_per_second"],
        },
        args.png,
    )
    result = {
        "bench": "deployed",
        "runs": args.runs,
        "parallel_count": args.parallel,
        "seconds_per_rate": args.seconds,
        "rest_seconds": args.rest,
        "cpus": os.cpu_count(),
        "deployed": summary(deployed),
        "single_process": summary(single),
        "ratio": round(
            deployed["full_load"]["transitions_per_second"] / single["full_load"]["transitions_per_second"], 3
        ),
        "png": str(args.png),
        "workflows": names,
        "pgbench_commits_per_second": {str(n): round(rate, 1) for n, rate in commits.items()},
        "targets": {
            "ratio": ">= 0.8",
            "cpu_us_per_transition": "<= 120",
            "peer_rate_p50_ms": "<= 5",
            "peer_rate_p99_ms": "<= 15",
        },
    }
    report(result, curves)


if __name__ == "__main__":
    main()
