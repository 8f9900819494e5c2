"""Which requests the local page answers: the ``Host`` and ``Origin`` checks that keep other websites out.

Any web page the user visits can make the browser send requests to ``http://127.0.0.1:7860``. Two attacks
follow, and one check closes each:

- **Cross-site requests (CSRF).** A "simple" request (a form or ``fetch`` POST with ``text/plain``) needs no
  permission to be *sent*, only to be read, so a hostile page could queue photos. A browser names the page a
  request comes from in ``Origin`` (and, in current browsers, ``Sec-Fetch-Site``): every state-changing request
  (anything but GET, HEAD and OPTIONS) must come from this page, ``Origin: http://<the Host it was sent to>``.
  A request without either header does not come from a web page (curl, a script) and is let through.
- **DNS rebinding.** A hostile name that first resolves to the attacker and then to 127.0.0.1 makes the
  attacker's page same-origin with this server, so its script could read the answers too. Such a request
  still carries the attacker's name in ``Host``: every request must name this server as the user reaches it,
  a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``), the ``--host`` address, any IP address when bound
  to all interfaces (an address cannot be rebound), or a name given with ``--allow-host`` (``*``: any).

A refused request gets 403 with a one-line JSON error, and the server prints one line saying why.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from typing import Callable

from starlette.responses import JSONResponse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
_SHOWN_CHARS = 80  # header values in messages are the sender's text: cut and escaped


@dataclass(frozen=True)
class AllowedHosts:
    """Host names (lower case, no port) this server answers to; ``any_address``: every IP literal too."""

    names: frozenset[str] = LOOPBACK_NAMES
    any_address: bool = False
    any_name: bool = False

    @classmethod
    def for_binding(cls, host: str, extra: list[str] | tuple[str, ...] = ()) -> "AllowedHosts":
        """What ``lumicap serve --host HOST [--allow-host NAME ...]`` answers to."""
        names = set(LOOPBACK_NAMES)
        bound = _normal(host)
        if bound not in WILDCARD_ADDRESSES:
            names.add(bound)
        wanted = {_normal(name) for name in extra}
        return cls(frozenset(names | (wanted - {"*"})), any_address=bound in WILDCARD_ADDRESSES, any_name="*" in wanted)

    def allows(self, hostname: str) -> bool:
        name = _normal(hostname)
        if self.any_name or name in self.names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self.any_address

    def describe(self) -> str:
        shown = sorted(self.names)
        if self.any_address:
            shown.append("any IP address")
        return "any host" if self.any_name else ", ".join(shown)


@dataclass
class HostOriginGuard:
    """ASGI middleware: refuse (403) requests whose ``Host`` is not this server, and state-changing
    requests that a browser sent from another page."""

    app: Callable
    allowed: AllowedHosts = field(default_factory=AllowedHosts)
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        problem = self.problem(scope["method"], headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        self.log(f"lumicap serve: refused {scope['method']} {_shown(scope.get('path', ''))}: {problem}")
        response = JSONResponse({"error": f"refused: {problem}"}, status_code=403)
        await response(scope, receive, send)

    def problem(self, method: str, headers: dict[str, str]) -> str | None:
        """Why a request is refused, or None."""
        host = headers.get("host", "")
        hostname = split_host(host)
        if hostname is None or not self.allowed.allows(hostname):
            return (f"Host {_shown(host) or '(none)'} is not this server (it answers to {self.allowed.describe()}; "
                    "lumicap serve --allow-host NAME adds a name)")
        if method.upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            if origin.lower().rstrip("/") in (f"http://{host.lower()}", f"https://{host.lower()}"):
                return None
            return f"Origin {_shown(origin)} is not this page (http://{_shown(host)}): a request from another website"
        if headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
            return f"sent by another website (Sec-Fetch-Site: {_shown(headers['sec-fetch-site'])})"
        return None


def split_host(value: str) -> str | None:
    """The host name of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), or None when malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if not name or (colon and not port.isdigit()) or ":" in port:
        return None
    return name


def _normal(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def _shown(text: str) -> str:
    from lumicap.errors import one_line

    text = one_line(text)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
