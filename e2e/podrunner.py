"""The pod runner: the one stand-in of the CI tier (DESIGN §6) for a kubelet and a scheduler.

The development control plane (scripts/kube.sh) has an API server and the controller manager but no scheduler and
no kubelet, so the Deployments the operator makes get ReplicaSets and Pods that stay Pending forever. This program
plays the missing part for the e2e suite, against the real API server:

- it registers a Node (Ready, with a heartbeat so the node lifecycle controller never evicts its pods);
- it watches the Pods of the given namespaces (re-listing whenever the watch stream ends), binds every unscheduled
  one to that Node (pods/binding) and runs the pod's first container's command + args as a local process, in the
  container's workingDir (or the directory given for its image), with the container's env resolved (value,
  valueFrom secretKeyRef / configMapKeyRef / fieldRef, envFrom, `$(VAR)` references) and the project's venv bin first
  on PATH, so the image's `conveyor` is the venv's; its stdout and stderr go to a log file per pod;
- each pod gets free local ports for its container ports (several pods share this host), passed to the process in
  the environment variables named by --port-env (the worker's CONVEYOR_PORT), and its readiness and liveness probes
  (httpGet, tcpSocket, exec) are run against them;
- the pod's status is what a kubelet would write: phase, conditions (PodScheduled, Initialized, ContainersReady,
  Ready), containerStatuses (ready, restartCount, running/terminated with exit code and message; containerID
  `podrunner://<pid>`). A container with a terminationMessagePath gets a per-pod file instead, named to it by
  --termination-env (the worker's CONVEYOR_TERMINATION_LOG); what it wrote there is the message, else, under
  terminationMessagePolicy FallbackToLogsOnError, the tail of its log after a failed exit;
- an exited container is restarted with the kubelet's back-off (10 s doubling to 5 min) as restartPolicy says; a
  liveness failure restarts it too;
- a pod being deleted gets SIGTERM, its grace period, then SIGKILL, and is removed (delete with grace 0) once its
  process is gone.

- with --service-account-tokens, each start of a container gets what the kubelet would mount: a token of the pod's
  own service account (TokenRequest, bound to the pod, an hour long), here in a kubeconfig of its own named by
  KUBECONFIG, so the process has exactly the permissions of its account (none if automountServiceAccountToken is
  false). Without it, every process gets --pod-kubeconfig, by default the runner's own credentials.

What it does not do: images (a container's filesystem is this machine's; --image maps an image to a directory),
volumes, init and sidecar containers, resource limits, security contexts, and token rotation (a container running
for over an hour keeps an expired token until it restarts).

Run it with the project's venv: `.venv/bin/python e2e/podrunner.py --kubeconfig K --namespace NS --log-dir DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

logger = logging.getLogger("podrunner")

POD_IP = "127.0.0.1"
HEARTBEAT_SECONDS = 10.0
WATCH_SECONDS = 60
DEFAULT_GRACE = 30
# A restarted container that then ran this long starts its back-off over, as the kubelet's does.
BACKOFF_RESET_SECONDS = 600.0
MESSAGE_TAIL_BYTES = 2048
TERMINATION_MESSAGE_BYTES = 4096  # what the kubelet keeps of a termination message file
TOKEN_SECONDS = 3600  # a bound service account token's life (the kubelet asks for an hour too, and rotates it)
STATUS_RETRY = 2.0
REMOVE_ATTEMPTS = 60
JSON = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((POD_IP, 0))
        return int(s.getsockname()[1])


class ConfigError(Exception):
    """The container cannot be started as specified (a missing Secret key, an unsupported field): the kubelet's
    CreateContainerConfigError, retried until it can."""


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][-._A-Za-z0-9]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined reference kept, `$$` is `$`."""

    def one(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        return env.get(found.group(1), found.group(0))

    return _REFERENCE.sub(one, text)


def field_value(pod: JSON, path: str) -> str:
    """A fieldRef's value (the downward API)."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path] or "")
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise ConfigError(f"env fieldRef.fieldPath: {path!r} is not supported by the pod runner")


@dataclass
class Probe:
    """One probe's schedule and consecutive results."""

    spec: JSON
    ok_streak: int = 0
    fail_streak: int = 0
    next_at: float = 0.0

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds") or 1)

    @property
    def failure_threshold(self) -> int:
        return int(self.spec.get("failureThreshold") or 3)

    @property
    def success_threshold(self) -> int:
        return int(self.spec.get("successThreshold") or 1)


@dataclass
class Container:
    """The running (or last run) process of the pod's first container."""

    name: str
    image: str
    ports: dict[str, int] = field(default_factory=dict)  # container port (number or name) -> local port
    process: asyncio.subprocess.Process | None = None
    started_at: str | None = None
    started_monotonic: float = 0.0
    ready: bool = False
    restarts: int = 0
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)


class PodRunner:
    """The node: watches, binds and runs pods; see the module docstring."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.node: str = args.node
        self.namespaces: list[str] | None = args.namespace
        self.log_dir = Path(args.log_dir)
        self.bin_dir = str(Path(args.bin).resolve())
        self.images: dict[str, str] = dict(args.image or [])
        configuration = client.Configuration()
        config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.pod_kubeconfig = str(Path(args.pod_kubeconfig or args.kubeconfig).resolve())
        self.configuration = configuration
        self.pods: dict[str, PodTask] = {}
        self.binding: set[str] = set()
        self.tasks: set[asyncio.Future[None]] = set()  # bindings in flight (the loop keeps only weak references)
        self.stopping = threading.Event()
        self.node_conditions: dict[str, JSON] = {}

    def kubeconfig_for(self, token: str, namespace: str) -> JSON:
        """A kubeconfig for this cluster that authenticates with `token` (JSON is YAML too)."""
        cluster: JSON = {"server": self.configuration.host}
        if not self.configuration.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        elif self.configuration.ssl_ca_cert:
            authority = Path(self.configuration.ssl_ca_cert).read_bytes()
            cluster["certificate-authority-data"] = base64.b64encode(authority).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "service-account", "user": {"token": token}}],
            "contexts": [
                {"name": "pod", "context": {"cluster": "cluster", "user": "service-account", "namespace": namespace}}
            ],
            "current-context": "pod",
        }

    # -- the node ------------------------------------------------------------------------------------------------

    def _node_status(self, ready: bool) -> JSON:
        conditions = []
        for type_, value, reason in (
            ("Ready", "True" if ready else "False", "PodRunnerReady" if ready else "PodRunnerStopped"),
            ("MemoryPressure", "False", "PodRunnerHasSufficientMemory"),
            ("DiskPressure", "False", "PodRunnerHasNoDiskPressure"),
            ("PIDPressure", "False", "PodRunnerHasSufficientPID"),
        ):
            before = self.node_conditions.get(type_)
            transition = before["lastTransitionTime"] if before and before["status"] == value else now()
            condition = {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": "e2e/podrunner.py runs this node's pods as local processes",
                "lastHeartbeatTime": now(),
                "lastTransitionTime": transition,
            }
            self.node_conditions[type_] = condition
            conditions.append(condition)
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": "16Gi", "pods": "110"}
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": POD_IP}, {"type": "Hostname", "address": self.node}],
            "nodeInfo": {
                "machineID": "podrunner",
                "systemUUID": "podrunner",
                "bootID": "podrunner",
                "kernelVersion": platform.release(),
                "osImage": "e2e/podrunner.py",
                "containerRuntimeVersion": "podrunner://local-processes",
                "kubeletVersion": "podrunner",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64" if platform.machine() in ("x86_64", "AMD64") else platform.machine(),
            },
        }

    def register(self) -> None:
        body: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "conveyor.dev/podrunner": "true",
                },
            },
            "status": self._node_status(True),
        }
        try:
            self.core.create_node(body)
            logger.info("registered node %s", self.node)
        except ApiException as e:
            if e.status != 409:
                raise
            logger.info("node %s exists: taking it over", self.node)
        self.heartbeat(ready=True)

    def heartbeat(self, ready: bool) -> None:
        self.core.patch_node_status(
            self.node, {"status": self._node_status(ready)}, _content_type="application/merge-patch+json"
        )

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await asyncio.to_thread(self.heartbeat, True)
            except Exception as e:  # the next beat retries; the node's grace period is several beats long
                logger.warning("node heartbeat failed: %s", e)

    # -- watching pods -------------------------------------------------------------------------------------------

    def _list(self, namespace: str | None, **kwargs: Any) -> Any:
        if namespace is None:
            return self.core.list_pod_for_all_namespaces(_preload_content=False, **kwargs)
        return self.core.list_namespaced_pod(namespace, _preload_content=False, **kwargs)

    def watch(self, namespace: str | None, deliver: Callable[[str, Any], None]) -> None:
        """In a thread, until stopping: list, deliver every pod, then watch from the list's resourceVersion; when
        the stream ends (timeout, 410 Gone, a broken connection) list again."""
        where = namespace or "every namespace"
        while not self.stopping.is_set():
            try:
                listing = json.loads(self._list(namespace, _request_timeout=30).data)
                deliver("LIST", (namespace, listing.get("items") or []))
                version = listing["metadata"]["resourceVersion"]
                response = self._list(
                    namespace,
                    watch=True,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=(10, WATCH_SECONDS + 30),
                )
                try:
                    for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                        if self.stopping.is_set():
                            return
                        event = json.loads(line)
                        kind = event.get("type")
                        if kind == "ERROR":
                            logger.info("pod watch in %s: %s; listing again", where, event["object"].get("message"))
                            break
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            deliver(kind, event["object"])
                finally:
                    response.release_conn()
            except Exception as e:
                if self.stopping.is_set():
                    return
                logger.warning("pod watch in %s failed (%s); listing again in 1s", where, e)
                time.sleep(1)

    def on_event(self, kind: str, payload: Any) -> None:
        if kind == "LIST":
            namespace, items = payload
            seen = {item["metadata"]["uid"] for item in items}
            for uid, task in list(self.pods.items()):
                if (namespace is None or task.namespace == namespace) and uid not in seen:
                    task.gone()  # deleted while the watch was down
            for item in items:
                self.on_pod(item, deleted=False)
        else:
            self.on_pod(payload, deleted=kind == "DELETED")

    def on_pod(self, pod: JSON, *, deleted: bool) -> None:
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        uid = metadata["uid"]
        task = self.pods.get(uid)
        if deleted:
            if task is not None:
                task.gone()
            return
        node = spec.get("nodeName")
        if not node:
            if uid not in self.binding and not metadata.get("deletionTimestamp"):
                self.binding.add(uid)
                binding = asyncio.ensure_future(self.bind(pod))
                self.tasks.add(binding)
                binding.add_done_callback(self.tasks.discard)
            return
        if node != self.node:
            return
        if task is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not metadata.get(
                "deletionTimestamp"
            ):
                return  # finished before this runner started: nothing to run
            task = PodTask(self, pod)
            self.pods[uid] = task
            task.update(pod)
            task.start()
        else:
            task.update(pod)

    async def bind(self, pod: JSON) -> None:
        metadata = pod["metadata"]
        body: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": metadata["name"], "uid": metadata["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        try:
            # Not deserialised: the client's V1Binding model refuses the API server's answer.
            await asyncio.to_thread(
                self.core.create_namespaced_pod_binding,
                metadata["name"],
                metadata["namespace"],
                body,
                _preload_content=False,
            )
            logger.info("bound pod %s/%s to %s", metadata["namespace"], metadata["name"], self.node)
        except ApiException as e:
            self.binding.discard(metadata["uid"])
            if e.status not in (404, 409):
                logger.warning("binding pod %s/%s: %s %s", metadata["namespace"], metadata["name"], e.status, e.reason)
        except Exception as e:  # the API server restarting: the next event or re-list binds it
            self.binding.discard(metadata["uid"])
            logger.warning("binding pod %s/%s: %s", metadata["namespace"], metadata["name"], e)

    # -- the program ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await asyncio.to_thread(self.register)
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def deliver(kind: str, payload: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, payload))

        scopes: list[str | None] = [*self.namespaces] if self.namespaces else [None]
        for namespace in scopes:
            threading.Thread(target=self.watch, args=(namespace, deliver), daemon=True).start()
        beating = asyncio.ensure_future(self.heartbeats())
        logger.info("node %s runs the pods of %s", self.node, ", ".join(self.namespaces or ["every namespace"]))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                getting = asyncio.ensure_future(events.get())
                await asyncio.wait({getting, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stopped.done():
                    getting.cancel()
                    break
                self.on_event(*getting.result())
        finally:
            self.stopping.set()
            beating.cancel()
            logger.info("stopping: terminating %d pod(s)", len(self.pods))
            await asyncio.gather(*(task.shutdown() for task in self.pods.values()), return_exceptions=True)
            try:
                if self.args.delete_node_on_exit:
                    await asyncio.to_thread(self.core.delete_node, self.node)
                else:
                    await asyncio.to_thread(self.heartbeat, False)
            except Exception as e:  # the API server may be gone too; the processes are stopped, which is what counts
                logger.warning("node %s at exit: %s", self.node, e)
            self.api.close()  # type: ignore[no-untyped-call]


class PodTask:
    """One pod bound to this node: its container's process, probes, restarts, status and termination."""

    def __init__(self, runner: PodRunner, pod: JSON) -> None:
        self.runner = runner
        self.pod = pod
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.uid: str = pod["metadata"]["uid"]
        spec = pod["spec"]
        first = spec["containers"][0]
        self.container = Container(first["name"], first.get("image", ""))
        self.deleting = asyncio.Event()
        self.deleted = False  # the API object is gone: nothing left to patch or delete
        self.grace = float(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        self.conditions: dict[str, JSON] = {}
        self.stale = False  # the last status patch failed: retried every STATUS_RETRY seconds
        self.start_time = now()
        self.log_path = runner.log_dir / f"{self.namespace}_{self.name}_{self.container.name}.log"
        self.log_offset = 0  # where the current start's output begins in the log
        self.termination_path = self.log_path.with_suffix(".termination-log")
        self.kubeconfig_path = self.log_path.with_suffix(".kubeconfig")
        self.task: asyncio.Future[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.run())

    def update(self, pod: JSON) -> None:
        self.pod = pod
        metadata = pod["metadata"]
        if metadata.get("deletionTimestamp") and not self.deleting.is_set():
            self.grace = float(metadata.get("deletionGracePeriodSeconds", self.grace))
            logger.info("pod %s/%s is being deleted (grace %.0fs)", self.namespace, self.name, self.grace)
            self.deleting.set()

    def gone(self) -> None:
        self.deleted = True
        if not self.deleting.is_set():
            # Deleted at once (grace 0, or while the watch was down): still stop the process, briefly.
            self.grace = min(self.grace, 2.0)
            self.deleting.set()

    # -- status --------------------------------------------------------------------------------------------------

    def _condition(self, type_: str, value: bool) -> JSON:
        status = "True" if value else "False"
        before = self.conditions.get(type_)
        transition = before["lastTransitionTime"] if before and before["status"] == status else now()
        condition = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": transition}
        if type_ in ("Ready", "ContainersReady") and not value:
            condition["reason"] = "ContainersNotReady"
            condition["message"] = f"containers with unready status: [{self.container.name}]"
        self.conditions[type_] = condition
        return condition

    async def patch_status(self, phase: str = "Running") -> None:
        if self.deleted:
            return
        c = self.container
        status_of_container: JSON = {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": c.ready,
            "started": c.process is not None and c.process.returncode is None,
            "restartCount": c.restarts,
            "state": c.state,
            "lastState": c.last_state,
        }
        if c.process is not None:
            status_of_container["containerID"] = f"podrunner://{c.process.pid}"
        status = {
            "phase": phase,
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", True),
                self._condition("Ready", c.ready),
                self._condition("ContainersReady", c.ready),
                self._condition("PodScheduled", True),
            ],
            "containerStatuses": [status_of_container],
        }
        try:
            await asyncio.to_thread(
                self.runner.core.patch_namespaced_pod_status,
                self.name,
                self.namespace,
                {"status": status},
                _content_type="application/merge-patch+json",
            )
            self.stale = False
        except ApiException as e:
            if e.status == 404:
                self.gone()
            else:
                self.stale = True
                logger.warning("status of pod %s/%s: %s %s", self.namespace, self.name, e.status, e.reason)
        except Exception as e:  # the API server restarting: the status is written again on the next tick
            self.stale = True
            logger.warning("status of pod %s/%s: %s", self.namespace, self.name, e)

    # -- the container -------------------------------------------------------------------------------------------

    def _read_key(self, kind: str, ref: JSON) -> str | None:
        name, key, optional = ref.get("name", ""), ref["key"], bool(ref.get("optional"))
        data = self._read_all(kind, name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key]

    def _read_all(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        core = self.runner.core
        try:
            if kind == "Secret":
                secret = core.read_namespaced_secret(name, self.namespace)
                return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
            found = core.read_namespaced_config_map(name, self.namespace)
            return dict(found.data or {})
        except ApiException as e:
            if e.status == 404:
                if optional:
                    return None
                raise ConfigError(f'{kind.lower()} "{name}" not found') from None
            raise

    def environment(self, spec: JSON) -> dict[str, str]:
        """The process's environment: a minimal base (never the runner's own, so nothing leaks in from the test
        machine), then the container's envFrom and env resolved in order, as the kubelet does."""
        base = {
            "PATH": f"{self.runner.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "HOSTNAME": self.name,
            "PYTHONUNBUFFERED": "1",
        }
        credentials = self._credentials()
        if credentials is not None:
            base["KUBECONFIG"] = credentials  # stands in for the mounted service account token
        env: dict[str, str] = dict(base)
        for source in spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source:
                    ref = source[key]
                    data = self._read_all(kind, ref.get("name", ""), bool(ref.get("optional")))
                    env.update({prefix + k: v for k, v in (data or {}).items()})
        for variable in spec.get("env") or []:
            name = variable["name"]
            if "valueFrom" not in variable:
                env[name] = expand(variable.get("value", ""), env)
                continue
            source = variable["valueFrom"]
            if "secretKeyRef" in source:
                value = self._read_key("Secret", source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                value = self._read_key("ConfigMap", source["configMapKeyRef"])
            elif "fieldRef" in source:
                value = field_value(self.pod, source["fieldRef"]["fieldPath"])
            else:
                raise ConfigError(f"env {name}: valueFrom {', '.join(source)} is not supported by the pod runner")
            if value is not None:
                env[name] = value
        if spec.get("terminationMessagePath") and self.runner.args.termination_env:
            # The stand-in for the file the kubelet mounts at terminationMessagePath: one per pod, named to the
            # process by this variable.
            env[self.runner.args.termination_env] = str(self.termination_path)
        for port_env in self.runner.args.port_env:
            # The one way the process learns which local port stands for its (first) container port.
            if self.container.ports:
                env[port_env] = str(next(iter(self.container.ports.values())))
        return env

    def _credentials(self) -> str | None:
        """The kubeconfig the process gets: the runner's --pod-kubeconfig, or with --service-account-tokens one
        holding a fresh token of the pod's service account (None when the pod asks for no token)."""
        if not self.runner.args.service_account_tokens:
            return self.runner.pod_kubeconfig
        spec = self.pod["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return None
        account = spec.get("serviceAccountName") or "default"
        pod = client.V1BoundObjectReference(api_version="v1", kind="Pod", name=self.name, uid=self.uid)
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS, bound_object_ref=pod)
        )
        try:
            answer = self.runner.core.create_namespaced_service_account_token(account, self.namespace, request)
        except ApiException as e:
            if e.status == 404:
                raise ConfigError(f'serviceaccount "{account}" not found') from None
            raise
        token = answer.status.token if answer.status is not None else None
        if not token:
            raise ConfigError(f'serviceaccount "{account}": the API server issued no token')
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig_path.touch(mode=0o600)
        self.kubeconfig_path.write_text(json.dumps(self.runner.kubeconfig_for(token, self.namespace)))
        return str(self.kubeconfig_path)

    def _working_dir(self, spec: JSON) -> str:
        if spec.get("workingDir"):
            return str(spec["workingDir"])
        return self.runner.images.get(self.container.image, str(self.runner.args.workdir))

    async def _start(self, spec: JSON) -> str | None:
        """Start the process; None, or why it could not be started (the kubelet's StartError)."""
        env = await asyncio.to_thread(self.environment, spec)
        argv = [expand(part, env) for part in [*(spec.get("command") or []), *(spec.get("args") or [])]]
        if not spec.get("command"):
            return "the container has no command: the pod runner runs commands, not images' entrypoints"
        found = shutil.which(argv[0], path=env["PATH"]) if "/" not in argv[0] else argv[0]
        if found is None:
            return f'exec: "{argv[0]}": executable file not found in $PATH'
        cwd = self._working_dir(spec)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Empty at each start, as the kubelet's file is for a new container.
            self.termination_path.write_bytes(b"")
            log.write(f"--- podrunner: start {self.container.restarts} at {now()}: {argv} in {cwd}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            try:
                self.container.process = await asyncio.create_subprocess_exec(
                    found,
                    *argv[1:],
                    cwd=cwd,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: signals reach whatever it started too
                )
            except OSError as e:
                return f"starting {argv[0]}: {e}"
        c = self.container
        assert c.process is not None
        c.started_at = now()
        c.started_monotonic = time.monotonic()
        c.ready = False
        c.state = {"running": {"startedAt": c.started_at}}
        logger.info("pod %s/%s: started pid %d: %s", self.namespace, self.name, c.process.pid, " ".join(argv))
        return None

    def _termination_message(self) -> str:
        try:
            return self.termination_path.read_bytes()[:TERMINATION_MESSAGE_BYTES].decode(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self.log_offset, size - MESSAGE_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _local_port(self, port: Any) -> int:
        return self.container.ports.get(str(port), int(port) if str(port).isdigit() else 0)

    async def _probe_once(self, probe: Probe, spec: JSON) -> bool:
        handler = probe.spec
        try:
            if "httpGet" in handler:
                get = handler["httpGet"]
                scheme = str(get.get("scheme", "HTTP")).lower()
                url = f"{scheme}://{get.get('host') or POD_IP}:{self._local_port(get['port'])}{get.get('path', '/')}"
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                timeout = aiohttp.ClientTimeout(total=probe.timeout)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(url, headers=headers, ssl=False) as answer,
                ):
                    return 200 <= answer.status < 400
            if "tcpSocket" in handler:
                port = self._local_port(handler["tcpSocket"]["port"])
                _, writer = await asyncio.wait_for(asyncio.open_connection(POD_IP, port), probe.timeout)
                writer.close()
                return True
            if "exec" in handler:
                env = await asyncio.to_thread(self.environment, spec)
                checking = await asyncio.create_subprocess_exec(
                    *handler["exec"]["command"],
                    cwd=self._working_dir(spec),
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                return await asyncio.wait_for(checking.wait(), probe.timeout) == 0
        except (OSError, TimeoutError, aiohttp.ClientError, ConfigError):
            return False
        return True  # a probe kind the runner does not know (grpc) counts as passing

    async def _watch_process(self, spec: JSON) -> str | None:
        """Probe the running process until it exits (None) or the pod is deleted ("deleted") or its liveness probe
        fails ("liveness")."""
        c = self.container
        assert c.process is not None
        start = time.monotonic()
        readiness = Probe(spec["readinessProbe"]) if spec.get("readinessProbe") else None
        liveness = Probe(spec["livenessProbe"]) if spec.get("livenessProbe") else None
        for probe in (readiness, liveness):
            if probe is not None:
                probe.next_at = start + float(probe.spec.get("initialDelaySeconds") or 0)
        if readiness is None:
            c.ready = True
        await self.patch_status()
        exited = asyncio.ensure_future(c.process.wait())
        deleting = asyncio.ensure_future(self.deleting.wait())
        try:
            while True:
                due = [p.next_at for p in (readiness, liveness) if p is not None]
                if self.stale:
                    due.append(time.monotonic() + STATUS_RETRY)
                wait = max(0.0, min(due) - time.monotonic()) if due else None
                done, _ = await asyncio.wait({exited, deleting}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if deleting in done:
                    return "deleted"
                if exited in done:
                    return None
                moment = time.monotonic()
                if self.stale:
                    await self.patch_status()
                if readiness is not None and readiness.next_at <= moment:
                    readiness.next_at = moment + readiness.period
                    ok = await self._probe_once(readiness, spec)
                    readiness.ok_streak, readiness.fail_streak = (
                        (readiness.ok_streak + 1, 0) if ok else (0, readiness.fail_streak + 1)
                    )
                    ready = c.ready
                    if ok and readiness.ok_streak >= readiness.success_threshold:
                        ready = True
                    elif not ok and readiness.fail_streak >= readiness.failure_threshold:
                        ready = False
                    if ready != c.ready and c.process.returncode is None:
                        c.ready = ready
                        logger.info("pod %s/%s: ready=%s", self.namespace, self.name, ready)
                        await self.patch_status()
                if liveness is not None and liveness.next_at <= moment:
                    liveness.next_at = moment + liveness.period
                    ok = await self._probe_once(liveness, spec)
                    liveness.fail_streak = 0 if ok else liveness.fail_streak + 1
                    if liveness.fail_streak >= liveness.failure_threshold:
                        logger.warning("pod %s/%s: liveness probe failed: restarting", self.namespace, self.name)
                        return "liveness"
        finally:
            deleting.cancel()
            exited.cancel()

    async def _terminate(self, grace: float) -> None:
        """SIGTERM to the process group, `grace` seconds, then SIGKILL."""
        process = self.container.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            logger.warning("pod %s/%s: still running after %.0fs: SIGKILL", self.namespace, self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        # Whatever it started and left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _record_exit(self, reason: str | None = None) -> int:
        c = self.container
        assert c.process is not None and c.process.returncode is not None
        code = c.process.returncode
        exit_code = 128 - code if code < 0 else code  # killed by signal N: 128+N, as a container runtime reports
        terminated: JSON = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": c.started_at,
            "finishedAt": now(),
            "containerID": f"podrunner://{c.process.pid}",
        }
        message = self._termination_message()
        policy = self.pod["spec"]["containers"][0].get("terminationMessagePolicy", "File")
        if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
            message = self._log_tail()
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}
        c.ready = False
        logger.info("pod %s/%s: pid %d exited with %d", self.namespace, self.name, c.process.pid, exit_code)
        return exit_code

    async def _wait_deleting(self, seconds: float | None) -> bool:
        """Wait `seconds` (forever if None) unless the pod is being deleted first; True if it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deleting.wait(), seconds)
        return self.deleting.is_set()

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pod %s/%s: the pod runner failed", self.namespace, self.name)
        finally:
            await self._terminate(self.grace)
            await self._remove()
            self.runner.pods.pop(self.uid, None)

    async def _run(self) -> None:
        spec = self.pod["spec"]["containers"][0]
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for port in spec.get("ports") or []:
            local = free_port()
            self.container.ports[str(port["containerPort"])] = local
            if port.get("name"):
                self.container.ports[port["name"]] = local
        if self.deleting.is_set():
            return  # found already being deleted: nothing was started, the pod only needs removing
        await self.patch_status("Pending")
        backoff = self.runner.args.backoff
        while not self.deleting.is_set():
            c = self.container
            try:
                problem = await self._start(spec)
            except (ConfigError, ApiException, urllib3.exceptions.HTTPError) as e:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
                await self.patch_status("Pending")
                if await self._wait_deleting(2.0):
                    return
                continue
            if problem is not None:
                c.last_state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": problem}}
                exit_code = 128
            else:
                why = await self._watch_process(spec)
                if why == "deleted":
                    return
                if why == "liveness":
                    await self._terminate(self.grace)
                exit_code = self._record_exit()
                if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                    await self.patch_status("Succeeded" if exit_code == 0 else "Failed")
                    await self._wait_deleting(None)
                    return
                c.last_state = c.state
                if time.monotonic() - c.started_monotonic > BACKOFF_RESET_SECONDS:
                    backoff = self.runner.args.backoff
            c.restarts += 1
            reason = "CrashLoopBackOff"
            message = f"back-off {backoff:.0f}s restarting failed container={c.name} pod={self.name}"
            c.state = {"waiting": {"reason": reason, "message": message}}
            c.ready = False
            await self.patch_status()
            if await self._wait_deleting(backoff):
                return
            backoff = min(backoff * 2, self.runner.args.max_backoff)

    async def _remove(self) -> None:
        """Once the process is gone, the pod goes (what the kubelet does after a graceful deletion)."""
        if self.deleted or not self.deleting.is_set():
            return
        for attempt in range(REMOVE_ATTEMPTS):
            try:
                await asyncio.to_thread(
                    self.runner.core.delete_namespaced_pod,
                    self.name,
                    self.namespace,
                    # In the body: the API server takes a body's options over the query's.
                    body=client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                    ),
                )
                logger.info("pod %s/%s: stopped and removed", self.namespace, self.name)
                break
            except ApiException as e:
                if e.status in (404, 409):
                    break
                logger.warning("removing pod %s/%s: %s %s", self.namespace, self.name, e.status, e.reason)
            except Exception as e:  # the API server restarting: try again
                logger.warning("removing pod %s/%s (attempt %d): %s", self.namespace, self.name, attempt + 1, e)
            await asyncio.sleep(1)
        self.deleted = True

    async def shutdown(self) -> None:
        """The runner is stopping: stop the process within the pod's grace period; the pod object stays."""
        self.deleted = True
        self.grace = min(self.grace, self.runner.args.shutdown_grace)
        self.deleting.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def _image(text: str) -> tuple[str, str]:
    image, sep, directory = text.rpartition("=")
    if not sep or not image or not directory:
        raise argparse.ArgumentTypeError(f"expected IMAGE=DIRECTORY, got {text!r}")
    if not Path(directory).is_dir():
        raise argparse.ArgumentTypeError(f"{directory!r} is not a directory")
    return image, str(Path(directory).resolve())


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podrunner", description="Play kubelet and scheduler: run the pods of some namespaces as local processes."
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="the cluster (default $KUBECONFIG)")
    parser.add_argument("--node", default=f"podrunner-{socket.gethostname()}".lower(), help="the Node's name")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", action="append", metavar="NS", help="run the pods of NS (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="run the pods of every namespace")
    parser.add_argument("--log-dir", required=True, help="where each pod's log file goes")
    parser.add_argument(
        "--bin", default=str(Path(sys.executable).parent), help="put first on PATH (default: this Python's bin)"
    )
    parser.add_argument("--workdir", default=os.getcwd(), help="working directory of containers without workingDir")
    parser.add_argument(
        "--image",
        action="append",
        type=_image,
        metavar="IMAGE=DIR",
        help="containers of IMAGE run in DIR (its stand-in filesystem) unless they set workingDir (repeatable)",
    )
    parser.add_argument(
        "--port-env",
        action="append",
        default=None,
        metavar="NAME",
        help="env var that tells the process its port: set to the pod's own local port (default CONVEYOR_PORT)",
    )
    parser.add_argument(
        "--termination-env",
        default="CONVEYOR_TERMINATION_LOG",
        metavar="NAME",
        help="env var naming the file that stands for a container's terminationMessagePath (default %(default)s; "
        "empty: none)",
    )
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument(
        "--pod-kubeconfig", help="credentials given to the processes as KUBECONFIG (default: --kubeconfig)"
    )
    credentials.add_argument(
        "--service-account-tokens",
        action="store_true",
        help="give each process a token of its pod's service account instead (as the kubelet mounts one)",
    )
    parser.add_argument("--backoff", type=_seconds, default=10.0, help="first restart back-off, seconds")
    parser.add_argument("--max-backoff", type=_seconds, default=300.0, help="longest restart back-off, seconds")
    parser.add_argument(
        "--shutdown-grace", type=_seconds, default=30.0, help="longest wait for a pod's process when the runner stops"
    )
    parser.add_argument("--delete-node-on-exit", action="store_true", help="remove the Node when stopping")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.kubeconfig:
        parser.error("--kubeconfig: expected a kubeconfig path (or set KUBECONFIG)")
    if not Path(args.kubeconfig).is_file():
        parser.error(f"--kubeconfig: expected a readable kubeconfig file, got {args.kubeconfig!r}")
    if args.all_namespaces:
        args.namespace = None
    args.port_env = args.port_env or ["CONVEYOR_PORT"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(PodRunner(args).run())


if __name__ == "__main__":
    main()
