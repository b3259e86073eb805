"""Helpers of the service-crash chaos tests: a service of the test's own started by the project's script, killed
with SIGKILL and started again; worker processes whose output goes to a file; and the check that every run
completed with each step's outcome stored exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from conveyor import RunState
from conveyor.adapters.postgres import PostgresRecordStore
from tests.helpers import ROOT, run_script
from tests.integration.worker import Leg, adapters, builder

RUNS = 1000


class Service:
    """A service run by scripts/<script> in a directory of its own (`variable` names the directory for the
    script), so crashing it harms no other test."""

    def __init__(self, script: str, variable: str, directory: Path, address: str) -> None:
        self.script, self.variable, self.directory, self.address_variable = script, variable, directory, address

    def run(self, command: str) -> str:
        done = run_script(self.script, command, env={**os.environ, self.variable: str(self.directory)}, timeout=300)
        assert done.returncode == 0, f"{self.script} {command}: {done.stdout}{done.stderr}"
        return done.stdout

    def start(self) -> str:
        """Start it (again, after a crash); its address as the script prints it."""
        found = re.search(rf"{self.address_variable}=(\S+)", self.run("start"))
        assert found, f"{self.script} start printed no {self.address_variable}"
        return found.group(1)

    def kill(self, pid_file: Path) -> None:
        """SIGKILL the process in `pid_file` and every process it started, at once."""
        root = int(pid_file.read_text().split()[0])
        pids = [root, *_children(root)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in pids):
            assert time.monotonic() < deadline, "the killed service's processes did not go"
            time.sleep(0.05)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        if int(text[text.rindex(")") + 2 :].split()[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rindex(")") + 2] == "Z"


class Worker:
    """A tests.integration.worker process, its output in a file (a pipe nobody reads would fill up with an
    outage's errors and stop the worker)."""

    def __init__(self, name: str, identity: str, env: dict[str, str], log_dir: Path) -> None:
        self.log = log_dir / f"worker-{identity}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.worker", name, identity],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "running" not in self.output():
            assert self.process.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


async def survive(
    env: dict[str, str],
    log_dir: Path,
    outage: Callable[[], Awaitable[None]],
    sign_of_it: str | tuple[str, ...],
    runs: int = RUNS,
    timeout: float = 180,
) -> None:
    """Two workers run `runs` runs of a three-step workflow; `outage()` happens once some have completed, and many
    have not once it is over. Then every run must complete, each step's outcome stored once, the outbox must
    drain, and both workers must still run, one of them having logged `sign_of_it` (or one of them: how a client
    meets an outage depends on what it was doing when it began)."""
    name = f"chaos-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    streamer, store, roles, timeouts = adapters("api", env)
    triggering = builder(name, "api").build(streamer, store, roles, timeout_store=timeouts)
    await triggering.run(roles=())
    checker = PostgresRecordStore(env["CONVEYOR_PG_DSN"])
    workers: list[Worker] = []
    try:
        run_ids: list[str] = []
        for first in range(0, runs, 500):  # concurrent triggers share statements
            chunk = range(first, min(first + 500, runs))
            run_ids += await asyncio.gather(*(triggering.trigger(f"parcel-{i}") for i in chunk))
        # The workers start once every run is in, so none finished while the rest were triggered: the outage then
        # begins with nearly all of them left, however fast this machine runs them.
        workers += [Worker(name, "first", env, log_dir), Worker(name, "second", env, log_dir)]
        await checker.open()
        async with asyncio.timeout(60):
            while await completed(checker, name) < runs // 20:
                await asyncio.sleep(0.02)
        await outage()
        assert await completed(checker, name) < runs, "every run finished despite the outage: it proved nothing"
        async with asyncio.timeout(timeout):
            while await completed(checker, name) < runs:
                await asyncio.sleep(0.1)
        for worker in workers:
            assert worker.process.poll() is None, f"a worker exited on the outage:\n{worker.output()}"
        # (A worker that was idle meanwhile may only have replaced dead connections without a word.)
        signs = (sign_of_it,) if isinstance(sign_of_it, str) else sign_of_it
        assert any(sign in w.output() for w in workers for sign in signs), (
            f"no worker saw the outage ({' or '.join(signs)}): it proved nothing\n"
            + "\n".join(w.output()[-3000:] for w in workers)
        )
        for run_id in run_ids:
            history = await checker.history(run_id)
            assert [h.status for h in history] == [Leg.RECEIVED, Leg.SORTED, Leg.LOADED, Leg.DELIVERED], history
            assert [h.meta.version for h in history] == [1, 2, 3, 4]
            assert (await checker.lookup(run_id)).run_state is RunState.COMPLETED
        async with asyncio.timeout(30):
            while await checker.list_outbox_events(name, 10):
                await asyncio.sleep(0.1)
    finally:
        await checker.close()
        await triggering.stop()
        for worker in workers:
            worker.stop()


async def completed(store: PostgresRecordStore, name: str) -> int:
    """How many runs of workflow `name` have completed (a count: listing thousands of runs every few ms would
    take the CPU the workers need)."""
    query = "SELECT count(*) FROM conveyor_runs WHERE workflow_name = %s AND run_state = %s"
    while True:
        try:
            async with store.pool.connection() as conn:
                row = await (await conn.execute(query, (name, int(RunState.COMPLETED)))).fetchone()
        except Exception:
            # Reading through a database crash too: the pool reconnects once the server is back.
            await asyncio.sleep(0.1)
            continue
        return int(row[0]) if row else 0
