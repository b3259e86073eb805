"""How kopf connects to the API server (its login handler is `_handlers._login`, which uses these).

- The address: in a pod, kopf's service-account login names `https://kubernetes.default.svc`, a DNS name, while
  the operator's own client and its leader Lease (`load_incluster_config`) go to $KUBERNETES_SERVICE_HOST and
  $KUBERNETES_SERVICE_PORT, as client-go's InClusterConfig does. With cluster DNS down, the leader kept its Lease
  while kopf reached nothing. kopf is given the same address as the rest, so both reach the API server or neither.
- The session: kopf's own, but built here with a trace that reports each request's outcome to `ApiReach`, which
  the operator's readiness and its leader's stepping back read. A custom session is kopf's documented way to tune
  its HTTP (`kopf.AiohttpSession`); it is built as kopf 1.45 builds its own from the same ConnectionInfo.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping

import aiohttp
import kopf

from conveyor_operator._reach import ApiReach


def service_server(environ: Mapping[str, str]) -> str | None:
    """The API server's address in a pod, as client-go's InClusterConfig makes it (an IPv6 host bracketed), or
    None outside a pod (either variable unset or empty)."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        return None
    # net.JoinHostPort: a host with a colon is an IPv6 address (a zone, after %, included).
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def in_cluster(info: kopf.ConnectionInfo, environ: Mapping[str, str]) -> kopf.ConnectionInfo:
    """The service account's ConnectionInfo, sent to the address the operator's client and Lease use."""
    server = service_server(environ)
    return info if server is None else dataclasses.replace(info, server=server)


def traced_session(info: kopf.ConnectionInfo, reach: ApiReach) -> kopf.AiohttpSession:
    """kopf's session for `info`, reporting each request's outcome to `reach`. Call it in the event loop."""
    # As kopf's APIContext does: the basic-auth helper is deprecated (and None) in kopf 1.45, where the headers
    # carry the credentials, but still the way for older kopf versions.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        auth = info.as_aiohttp_basic_auth()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        trace_configs=[reach.trace_config()],
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )


def reach_of(memo: kopf.Memo) -> ApiReach:
    """The operator's ApiReach: the one `_main` put in kopf's memo, else (kopf run by other means, the tests' in-
    process operator) a new one kept there."""
    found = memo.get("reach")
    if isinstance(found, ApiReach):
        return found
    reach = ApiReach()
    memo["reach"] = reach
    return reach
