"""What a webhook may be and how its deliveries are signed: no Flask, no SQL, no HTTP.

URLs are ``https``, or ``http`` to the hosts the admin allows (``WebhookHttpHosts``).
Every address a host name resolves to must be public unless
``WebhookAllowPrivateAddresses`` is on: loopback, link-local, private, shared,
unspecified, reserved and multicast addresses are refused when a webhook is saved
and again at each delivery, where the sender connects to an address it has just
checked (see ``plugin.webhooks.sender``), so a later DNS answer cannot send a
delivery to the server's own network.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from plugin.model import TIMELINE_EVENT_TYPES, Incident, TimelineEntry

ALL_EVENTS = "*"
URL_MAX = 2048
SECRET_MIN, SECRET_MAX = 16, 128
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 forms that carry an IPv4 address in their last 32 bits, and reach it: NAT64's well-known
# prefix, IPv4-translated (SIIT) and the deprecated IPv4-compatible form. (IPv4-mapped and 6to4
# have their own properties in ipaddress.)
_CARRY_IPV4 = tuple(ipaddress.ip_network(net) for net in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# Local-use NAT64 (RFC 8215): the IPv4 address may sit anywhere, and it leads into the local network.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
# A host whose last label is a number is an IPv4 address to URL parsers and resolvers alike.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
# Resolves a host name to its addresses (as text); a port of our own callers' choosing.
Resolver = Callable[[str, int], Sequence[str]]


class Refused(ValueError):
    """A URL or an address a webhook may not use; the message says what to change."""


@dataclass
class Webhook:
    """A registered webhook: where to post, which timeline event types, and the secret that signs."""

    id: str
    url: str
    events: list[str]
    secret: str
    team_id: str = ""
    creator_user_id: str = ""
    create_at: int = 0
    update_at: int = 0

    def matches(self, event_type: str, team_id: str) -> bool:
        """Does a timeline entry of this type, of an incident in this team, go to this webhook?"""
        return (ALL_EVENTS in self.events or event_type in self.events) and self.team_id in ("", team_id)


@dataclass(frozen=True)
class Target:
    """A checked URL taken apart: scheme, host (lower case, no brackets), port, and path with query."""

    scheme: str
    host: str
    port: int
    path: str
    host_header: str
    addresses: tuple[Address, ...] = field(default=())


def check_events(events: Sequence[str]) -> list[str]:
    """The event types as stored: known timeline types, or ``*`` alone; Refused otherwise."""
    wanted = list(dict.fromkeys(events))
    if not wanted:
        raise Refused(f"Name at least one timeline event type, or {ALL_EVENTS!r} for all of them.")
    unknown = [name for name in wanted if name != ALL_EVENTS and name not in TIMELINE_EVENT_TYPES]
    if unknown:
        raise Refused(f"Unknown event type(s) {', '.join(unknown)}: use {', '.join(TIMELINE_EVENT_TYPES)} "
                      f"or {ALL_EVENTS!r}.")
    return [ALL_EVENTS] if ALL_EVENTS in wanted else wanted


def new_secret() -> str:
    """A fresh signing secret (256 random bits)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str) -> str:
    """A secret given by the admin, if usable; Refused otherwise."""
    if not SECRET_MIN <= len(secret) <= SECRET_MAX or not secret.isprintable() or secret != secret.strip() \
            or not secret.isascii():
        raise Refused(f"The secret must be {SECRET_MIN} to {SECRET_MAX} printable ASCII characters without "
                      "surrounding spaces; leave it out to have one generated.")
    return secret


def parse_url(url: str, http_hosts: frozenset[str]) -> Target:
    """The URL taken apart, when its form is allowed (addresses not yet checked); Refused otherwise."""
    if len(url) > URL_MAX:
        raise Refused(f"The URL is longer than {URL_MAX} characters.")
    # urlsplit drops tabs and line breaks silently: refuse them, so the URL saved is the URL used.
    if any(char.isspace() or not char.isprintable() for char in url):
        raise Refused("The URL must not contain spaces or control characters: percent-encode them (%20).")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("The URL is not valid: expected https://host[:port]/path.") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        raise Refused("The URL must start with https:// and name a host.")
    if not host.isascii() or not all(char.isprintable() and not char.isspace() for char in host):
        raise Refused("The URL's host must be written in ASCII: give an international name in its xn-- form.")
    if "%" in host:
        raise Refused("The URL's IPv6 address must not carry a zone id (%...).")
    if ":" not in host and _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise Refused(f"Write an IPv4 address as four decimal numbers without leading zeros (like 192.0.2.10), "
                          f"not {host}.") from None
    if parts.username is not None or parts.password is not None:
        raise Refused("The URL must not carry a user name or password: receivers check the signature instead.")
    if parts.fragment:
        raise Refused("The URL must not have a #fragment.")
    if scheme == "http" and host not in http_hosts:
        raise Refused(f"Plain http:// is allowed only to the hosts in the WebhookHttpHosts setting; use https:// "
                      f"or ask an admin to add {host} there.")
    default = 443 if scheme == "https" else 80
    port = default if port is None else port
    if not 0 < port < 65536:
        raise Refused("The URL's port must be from 1 to 65535.")
    literal = f"[{host}]" if ":" in host else host
    return Target(scheme, host, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                  literal if port == default else f"{literal}:{port}")


def address_problem(address: Address) -> str | None:
    """Why a webhook may not reach this address without WebhookAllowPrivateAddresses, or None when it is public.

    An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4,
    NAT64, SIIT) is judged by the IPv4 address it leads to.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return f"{address} is a local-use NAT64 address"
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and int(address) > 1 and any(address in net for net in _CARRY_IPV4):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            kind = _kind(inner)
            return None if kind is None else f"{address} carries {inner}, a {kind} address"
    kind = _kind(address)
    return None if kind is None else f"{address} is a {kind} address"


def _kind(address: Address) -> str | None:
    for test, kind in ((address.is_loopback, "loopback"), (address.is_link_local, "link-local"),
                       (address.is_unspecified, "unspecified"), (address.is_multicast, "multicast"),
                       (address.is_private, "private"), (not address.is_global, "non-public")):
        if test:
            return kind
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolves host to, in its order (/etc/hosts and nsswitch included).

    It has no timeout of its own: callers run it through ``Lookups``, which waits only so long.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class LookupTooSlow(Exception):
    """A host lookup that did not answer within its time (``seconds``)."""

    def __init__(self, seconds: float):
        super().__init__(f"host lookup took over {seconds:g} s")
        self.seconds = seconds


class Lookups:
    """Host lookups run in a bounded pool of threads, each waited for only until its time is up.

    A thread in getaddrinfo cannot be interrupted, so the caller stops waiting instead.
    The pool is bounded: a resolver that never answers holds at most ``threads`` threads,
    and later lookups time out in its queue (and are then dropped unrun) instead of piling up.
    """

    def __init__(self, resolve: Resolver, threads: int, name: str):
        self.resolve = resolve
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=name)
        _OPEN.add(self)

    def within(self, host: str, port: int, seconds: float) -> Sequence[str]:
        """The resolver's answer if it comes within seconds; LookupTooSlow otherwise."""
        future = self._pool.submit(self.resolve, host, port)
        done, _ = concurrent.futures.wait([future], timeout=seconds)
        if not done:
            future.cancel()  # still queued behind lookups that hang: it will not run at all
            raise LookupTooSlow(seconds)
        return future.result()

    def shutdown(self) -> None:
        """Drop the lookups still queued and let idle threads end; one under way ends when its resolver returns."""
        self._pool.shutdown(wait=False, cancel_futures=True)


# Every lookup pool of this process, shut down together when a server worker exits.
_OPEN: "weakref.WeakSet[Lookups]" = weakref.WeakSet()


def shutdown_all() -> None:
    """Shut down every lookup pool of this process (gunicorn worker_exit)."""
    for lookups in list(_OPEN):
        lookups.shutdown()


def resolve_checked(target: Target, allow_private: bool, resolve: Resolver) -> Target:
    """The target with every address its host resolves to, each checked; Refused when one may not be reached.

    All of them are checked, not only the one used: a name that resolves to a public
    and a private address is refused whole. A resolver that gives up (LookupTooSlow,
    from ``Lookups``) is refused too, with the time it had.
    """
    try:
        addresses: list[Address] = [ipaddress.ip_address(target.host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(found.split("%")[0]) for found in resolve(target.host, target.port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise Refused(f"The host {target.host} could not be resolved ({type(exc).__name__}).") from None
        except LookupTooSlow as exc:
            raise Refused(f"The host {target.host} could not be resolved within {exc.seconds:g} s: check the name, "
                          "or try again when its DNS answers.") from None
    if not addresses:
        raise Refused(f"The host {target.host} resolves to no address.")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise Refused(f"Webhooks may not reach the host {target.host} unless the "
                              f"WebhookAllowPrivateAddresses setting is on: {problem}.")
    return Target(target.scheme, target.host, target.port, target.path, target.host_header, tuple(addresses))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Incident-Signature header: sha256= and the hex HMAC-SHA256 of "<timestamp>.<body>" with the secret."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def payload(entry: TimelineEntry, incident: Incident) -> str:
    """A delivery's body less its id: the event, the incident as it is after the change, and the entry (JSON)."""
    return json.dumps({
        "event_type": entry.event_type, "event_at": entry.event_at,
        "incident": {
            "id": incident.id, "name": incident.name, "description": incident.description,
            "is_active": incident.is_active, "commander_user_id": incident.commander_user_id,
            "team_id": incident.team_id, "channel_id": incident.channel_id, "create_at": incident.create_at,
            "end_at": incident.end_at, "active_stage": incident.active_stage,
            "active_stage_title": incident.active_stage_title, "playbook_id": incident.playbook_id},
        "entry": {
            "id": entry.id, "event_type": entry.event_type, "event_at": entry.event_at,
            "create_at": entry.create_at, "creator_user_id": entry.creator_user_id,
            "subject_user_id": entry.subject_user_id, "summary": entry.summary, "details": entry.details,
            "post_id": entry.post_id},
    }, ensure_ascii=False, separators=(",", ":"))


def body(delivery_id: str, stored_payload: str) -> bytes:
    """The exact bytes posted for a delivery: its id first, then the stored payload (the same on every attempt)."""
    return (f'{{"id":{json.dumps(delivery_id)},' + stored_payload[1:]).encode()


@dataclass
class Delivery:
    """One delivery as admins see it, with its attempts oldest first."""

    id: str
    webhook_id: str
    incident_id: str
    event_type: str
    status: str
    attempts: int
    create_at: int
    next_at: int
    finished_at: int
    attempt_log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_response_code(self) -> int | None:
        """The receiver's status at the last attempt (None: never reached, or not tried yet)."""
        return self.attempt_log[-1]["response_code"] if self.attempt_log else None
