"""The API server connection of the Kubernetes adapters: configuration from a kubeconfig file or, inside a pod,
from its service account; blocking client calls on a thread pool of their own (never the loop's default one,
which runs users' plain steps); and the client's errors turned into conveyor's, naming the server and the action.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from conveyor.errors import AccessDenied, InvalidInput, ServiceUnavailable

T = TypeVar("T")
SERVICE = "Kubernetes API server"

_executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="conveyor-kubernetes")


class Conflict(Exception):
    """The object changed (or already exists) since it was read: HTTP 409."""


class NotFound(Exception):
    """HTTP 404."""


class Transient(Exception):
    """The server could not be reached or answered with an error worth retrying (5xx, 429, a timeout)."""


def load_configuration(kubeconfig: str | None, context: str | None) -> client.Configuration:
    """Configuration from `kubeconfig` (or $KUBECONFIG, or ~/.kube/config), else the pod's service account."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as e:
            raise ServiceUnavailable(SERVICE, "in-cluster service account", str(e)) from None
    else:
        path = path or os.path.expanduser("~/.kube/config")
        if not os.path.isfile(path):
            raise InvalidInput("kubeconfig", "the path of a readable kubeconfig file", path)
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration
            )
        except (ConfigException, OSError, ValueError) as e:
            raise InvalidInput("kubeconfig", f"a valid kubeconfig ({e})", path) from None
    # Our loops retry with their own deadlines; the client's silent retries would only stretch them.
    configuration.retries = 0
    configuration.connection_pool_maxsize = 16
    return configuration


class Api:
    """One API server: `call()` runs a blocking client function on our pool and maps its errors."""

    def __init__(self, configuration: client.Configuration, timeout: float) -> None:
        self.address = str(configuration.host)
        self._client = client.ApiClient(configuration)
        self._timeout = timeout
        self.coordination = client.CoordinationV1Api(self._client)

    async def check(self) -> None:
        """Raise ServiceUnavailable unless the server answers (`/version` needs no permission)."""
        await self.call("reach the server", client.VersionApi(self._client).get_code)

    async def call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", self._timeout)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(_executor, lambda: fn(*args, **kwargs))
        except ApiException as e:
            raise self._translate(action, e) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Transient(f"{SERVICE} at {self.address}: {action}: {_reason(e)}") from None

    def _translate(self, action: str, error: ApiException) -> Exception:
        status = error.status or 0
        if status == 409:
            return Conflict(action)
        if status == 404:
            return NotFound(action)
        if status in (401, 403):
            return AccessDenied(SERVICE, f"{action} (at {self.address})", _message(error))
        if status == 0 or status == 429 or status >= 500:
            return Transient(f"{SERVICE} at {self.address}: {action}: HTTP {status} {_message(error)}")
        return ServiceUnavailable(SERVICE, self.address, f"{action}: HTTP {status} {_message(error)}")

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(_executor, self._client.close)


def _message(error: ApiException) -> str:
    import json

    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error) or type(error).__name__
