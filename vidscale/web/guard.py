"""Requests from anywhere but the page itself are refused.

- Host: only the loopback names (and, with --allow-remote, the bound address or
  an IP literal). A DNS-rebinding page reaches us under its own domain name, so
  its requests carry that name and are refused.
- Origin, when sent (browsers send it on every POST and on cross-origin fetches),
  must be this very server: scheme, name and port equal to the Host's.
- Sec-Fetch-Site, when sent, must say the request came from this origin or from
  the user (typing the address, a bookmark).
Every response also carries a content security policy that allows nothing but
this origin: the page can fetch no script, style or font from outside.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
     b"frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def host_name(host: str) -> str:
    """'127.0.0.1:8640' -> '127.0.0.1', '[::1]:8640' -> '::1', 'Example.ORG' -> 'example.org'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class OriginGuard:
    """ASGI middleware: 403 for a foreign Host, Origin or fetch site; security headers on the rest."""

    def __init__(self, app: ASGIApp, extra_hosts: Iterable[str] = (), any_ip: bool = False):
        self.app = app
        self.allowed = LOOPBACK_NAMES | {host_name(h) for h in extra_hosts}
        self.any_ip = any_ip  # --allow-remote on a wildcard address: any address of this machine

    def host_allowed(self, host: str) -> bool:
        name = host_name(host)
        return name in self.allowed or (self.any_ip and is_ip_literal(name))

    def refusal(self, headers: dict[str, str]) -> str | None:
        host = headers.get("host", "")
        if not self.host_allowed(host):
            return f"host {host!r} is not this server's"
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return f"requests from {origin} are refused"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"{site} requests are refused"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        reason = self.refusal(headers)
        if reason is not None:
            await _forbidden(send, reason)
            return

        async def with_headers(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _forbidden(send: Send, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
