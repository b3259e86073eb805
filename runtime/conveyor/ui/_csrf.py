"""Cross-site request forgery defence for the UI's actions (pause, resume, cancel, delete), and DNS-rebinding
defence for everything.

Every request must name the UI by an IP address, `localhost` or a host name it was told (`check_host`). Then
three independent checks guard each action, each enough to stop a forged POST from another site: the request
must come from the UI's own origin (Origin, or Referer when a browser sends no Origin); it must carry a token
(form field or `X-CSRF-Token` header) equal to the one in the UI's cookie, which another site can neither read
nor set; and that token must be signed with this process's secret (HMAC), so a token made up by someone is
worthless. The cookie is SameSite=Strict, so a browser does not even send it with a cross-site request."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from conveyor.errors import InvalidInput

COOKIE = "conveyor_csrf"
HEADER = "X-CSRF-Token"


class Forbidden(Exception):
    """A POST refused by the CSRF checks; the message says which check."""


def host_names(allowed_hosts: Iterable[str]) -> frozenset[str]:
    """The host names the UI may be reached by, as `check_host` compares them; InvalidInput naming
    `allowed_hosts` for anything that is not a bare host name (or "*")."""
    if isinstance(allowed_hosts, str):
        raise InvalidInput("allowed_hosts", "a list of host names, not one string", allowed_hosts)
    hosts: set[str] = set()
    for host in allowed_hosts:
        if host != "*" and (not isinstance(host, str) or not host.strip(".") or any(c in host for c in "/:@[] \t\r\n")):
            raise InvalidInput("allowed_hosts", "host names such as ui.example.com (no scheme, port or path)", host)
        hosts.add(host.lower().rstrip("."))
    return frozenset(hosts)


def check_host(request: web.Request, allowed: frozenset[str]) -> None:
    """Raise Forbidden unless the request's Host is an IP address, `localhost` or one of `allowed` (lower case;
    "*" allows any). DNS rebinding points a name the attacker owns at the UI's address, which makes the attacker's
    page same-origin with the UI (Origin checks and cookies then pass): refusing unknown names stops it, and an IP
    address or localhost cannot be rebound."""
    if "*" in allowed:
        return
    host = request.host
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower().rstrip(".")
    if name == "localhost" or name in allowed:
        return
    try:
        ipaddress.ip_address(name)
    except ValueError:
        raise Forbidden(
            f"this UI does not answer to the host name {name!r} (start it with --allowed-host {name} if it should)"
        ) from None


class Csrf:
    def __init__(self, secret: bytes | None = None) -> None:
        # Per process: restarting the UI invalidates old pages' tokens, which only costs a reload.
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, _bytes(nonce), hashlib.sha256).hexdigest()

    def new_token(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str) -> bool:
        nonce, _, signature = token.partition(".")
        return bool(nonce) and hmac.compare_digest(_bytes(self._sign(nonce)), _bytes(signature))

    def token_for(self, request: web.Request) -> str:
        """The token a page should embed: the request's cookie if it is one of ours, else a new one (which
        `set_cookie` then sends)."""
        cookie = request.cookies.get(COOKIE, "")
        return cookie if self.valid(cookie) else self.new_token()

    def set_cookie(self, request: web.Request, response: web.StreamResponse, token: str) -> None:
        if request.cookies.get(COOKIE) != token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure)

    def check(self, request: web.Request, submitted: str) -> None:
        """Raise Forbidden unless the POST comes from our own origin with the cookie's valid token."""
        expected = f"{request.scheme}://{request.host}"
        # Behind a proxy that ends TLS the UI is asked over http for a page the browser got over https: the https
        # origin of the same host is the UI's own (and no less trusted); an http origin for an https UI is not.
        accepted = {expected, f"https://{request.host}"}
        origin = request.headers.get("Origin")
        if origin is None:
            referer = request.headers.get("Referer")
            if referer is None:
                raise Forbidden("the request has neither an Origin nor a Referer header")
            try:
                parts = urlsplit(referer)
            except ValueError:  # "http://[oops": not a URL at all
                raise Forbidden("the request's Referer is not a URL") from None
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in accepted:
            raise Forbidden(f"the request comes from {origin}, not from {expected}")
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or not submitted:
            raise Forbidden("the CSRF token is missing (reload the page)")
        if not hmac.compare_digest(_bytes(cookie), _bytes(submitted)) or not self.valid(submitted):
            raise Forbidden("the CSRF token is not valid (reload the page)")


def _bytes(text: str) -> bytes:
    # Whatever a client sent (lone surrogates included) must compare as unequal, never raise.
    return text.encode("utf-8", "surrogatepass")
