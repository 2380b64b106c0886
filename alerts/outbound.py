"""Connections that notices go out on: which addresses a webhook may reach, a deadline
that ends a whole attempt, and the one POST every HTTP channel sends with.

A webhook's host name is looked up once; every address it gives must be public (unless the
configuration allows private ones), and the connection is made to one of those very
addresses, so a name that answers differently the second time (DNS rebinding) gets nowhere.
The request still carries the host name: in the `Host` header, and for https in the TLS
handshake (SNI), where the certificate is checked against it.
"""
from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urlsplit

from models.inputs import control_character

REFUSED_PRIVATE = ("refused: the address is private "
                   "(set RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true to allow)")
# One sentence for a name that does not resolve and for one that resolves privately: the
# delivery log must not tell which names the internal DNS knows.
NO_PUBLIC_ADDRESS = ("refused: the host name has no public address: it does not resolve, or "
                     "resolves to a private address (set RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true "
                     "to allow private ones)")
PRIVATE_URL = ("must not point at localhost or a private address (set "
               "RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true to allow)")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_SHORTHAND = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)  # 127.1, 0x7f.0.0.1, 2130706433
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")  # letters, digits, - and _


class TransportError(Exception):
    """A failed delivery attempt; `response` is what the server answered, if anything.

    A `permanent` error (the channel cannot work as configured) is not retried.
    """

    def __init__(self, message: str, response: str | None = None, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.response = response
        self.permanent = permanent


# --- Which addresses are public ---------------------------------------------------------------

def is_public(address: IPv4Address | IPv6Address) -> bool:
    """Whether a webhook may go to `address` without RUNWATCH_WEBHOOK_ALLOW_PRIVATE.

    Public means globally reachable unicast: not loopback, private (10/8, 172.16/12,
    192.168/16, fc00::/7), shared (100.64/10), link-local (169.254/16, fe80::/10),
    unspecified (0.0.0.0, ::), multicast, broadcast, reserved (240/4, ::/8 and others) or
    set aside for documentation and benchmarks. An IPv6 address that carries an IPv4 one
    (IPv4-mapped, 6to4, Teredo, NAT64) must pass with that one too.
    """
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)  # the very same IPv4 address
        carried = [address.sixtofour, address.teredo[1] if address.teredo else None,
                   IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None]
        if any(inner is not None and not is_public(inner) for inner in carried):
            return False
    return address.is_global and not (address.is_private or address.is_loopback
                                      or address.is_link_local or address.is_multicast
                                      or address.is_unspecified or address.is_reserved)


def literal_address(host: str) -> IPv4Address | IPv6Address | None:
    """The address a URL's host is written as, in any form a resolver reads as one
    (`127.0.0.1`, `::1`, and also `127.1`, `0x7f000001`, `2130706433`); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _IPV4_SHORTHAND.match(host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_name(host: str) -> str:
    """A URL's host (as `urlsplit` gives it) the way DNS and the `Host` header take it.

    A name with letters beyond ASCII goes through IDNA, whose nameprep (NFKC and case
    folding) turns full-width digits and letters, enclosed letters (`ⓛⓞⓒⓐⓛⓗⓞⓢⓣ`) and the
    ideographic full stops (`。．｡`) into ASCII: so `１２７。０。０。１` is `127.0.0.1`, checked
    as such. ValueError for a host that cannot be a name or an address.
    """
    if ":" in host:  # an IPv6 address, which urlsplit took from between brackets
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError("the host is not a valid IPv6 address") from None
        return host.lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("the host name is not valid") from None
    host = host.lower()
    if not _HOST_NAME.match(host):
        raise ValueError("the host name is not valid")
    return host


def is_private_host(host: str) -> bool:
    """Whether a URL's host (as `host_name` gives it) is, as written, not public:
    `localhost` (or a name under it) or a literal address that `is_public` refuses. Other
    names are checked when sending."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = literal_address(name)
    return address is not None and not is_public(address)


def checked_url(value: str, allow_private: bool) -> str:
    """An http(s) URL as a user typed it (stripped); unless `allow_private`, not one whose
    host is `localhost` or a private address. ValueError saying what is wrong."""
    value = value.strip()
    if control_character(value):
        raise ValueError("must not contain control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("must have a port from 1 to 65535")
    host = host_name(parts.hostname)  # as sending will look it up: 127。0。0。1 is 127.0.0.1
    if not allow_private and is_private_host(host):
        raise ValueError(PRIVATE_URL)
    return value


# --- The deadline of one attempt ---------------------------------------------------------------

class Deadline:
    """The end of one attempt, `seconds` from now.

    Within `with deadline:`, a timer shuts every connection `watch`ed down when the time is
    up, so no read or write can outlive it, however slowly the other side trickles bytes
    (a socket timeout alone counts from the last byte). Each step also gets at most the
    time `left()`.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer: threading.Timer | None = None

    def left(self) -> float:
        """Seconds until the deadline; TimeoutError when it has passed."""
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            self.expired = True
            raise TimeoutError("the deadline has passed")
        return remaining

    def watch(self, sock: socket.socket) -> None:
        """Cut this connection at the deadline (a TLS layer added on it later is cut too)."""
        duplicate = sock.dup()  # shutting the duplicate down ends the one connection
        with self._lock:
            self._watched.append(duplicate)
            expired = self.expired
        if expired:
            self._cut()

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def __enter__(self) -> "Deadline":
        self._timer = threading.Timer(max(0.0, self.end - time.monotonic()), self._cut)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


# --- Looking up and connecting -------------------------------------------------------------

Address = tuple[int, tuple]  # (address family, socket address)


def resolve(host: str, port: int, deadline: Deadline) -> list[Address]:
    """Every address `host` has, looked up once, within the deadline."""
    found: dict = {}
    done = threading.Event()

    def look_up() -> None:
        try:
            found["answer"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            found["error"] = exc
        finally:
            done.set()

    # getaddrinfo cannot be interrupted: it runs aside, and the attempt stops waiting for it.
    threading.Thread(target=look_up, name="webhook-lookup", daemon=True).start()
    if not done.wait(deadline.left()):
        deadline.expired = True
        raise TimeoutError("the host name lookup did not finish")
    if "error" in found:
        raise found["error"]
    addresses: list[Address] = []
    for family, _type, _proto, _name, sockaddr in found["answer"]:
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    return addresses


def public_addresses(host: str, port: int, deadline: Deadline) -> list[Address]:
    """Every address of a host name, each of them public; else TransportError, in the same
    words whether the name does not resolve or resolves (in part) to a private address."""
    try:
        addresses = resolve(host, port, deadline)
    except TimeoutError:
        raise
    except (OSError, UnicodeError):
        raise TransportError(NO_PUBLIC_ADDRESS) from None
    if not addresses or not all(is_public(address_of(sockaddr)) for _, sockaddr in addresses):
        raise TransportError(NO_PUBLIC_ADDRESS)
    return addresses


def address_of(sockaddr: tuple) -> IPv4Address | IPv6Address:
    """The IP address of a socket address from getaddrinfo (a zone index, if any, dropped)."""
    return ipaddress.ip_address(sockaddr[0].split("%", 1)[0])


def connect(addresses: list[Address], deadline: Deadline) -> socket.socket:
    """A TCP connection to the first of `addresses` that answers, watched by the deadline."""
    error: OSError = ConnectionError("the host name has no address")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                break  # the time is up: no other address can be tried
            continue
        deadline.watch(sock)
        return sock
    raise error


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `host` made to addresses looked up and checked beforehand."""

    def __init__(self, host: str, port: int, addresses: list[Address], deadline: Deadline):
        super().__init__(host, port, timeout=deadline.seconds)
        self.addresses, self.deadline = addresses, deadline

    def connect(self) -> None:
        self.sock = connect(self.addresses, self.deadline)
        self.sock.settimeout(self.deadline.left())


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: SNI and the certificate check use the host name, not the address."""

    def __init__(self, host: str, port: int, addresses: list[Address], deadline: Deadline):
        super().__init__(host, port, timeout=deadline.seconds,
                         context=ssl.create_default_context())
        self.addresses, self.deadline = addresses, deadline

    def connect(self) -> None:
        sock = connect(self.addresses, self.deadline)
        sock.settimeout(self.deadline.left())
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)



# --- One POST ------------------------------------------------------------------------------

ANSWER_BYTES = 2048  # of a refusal's body kept for the log (Slack says why in it)


@dataclass(frozen=True)
class Answer:
    """What a server answered a POST: status, reason, a few headers, and for an answer
    other than 2xx the start of its body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: str = ""
    cut: bool = False  # the body was not read whole (longer than asked, or broken off)

    @property
    def summary(self) -> str:
        """The status line as the delivery log shows it."""
        return f"HTTP {self.status} {self.reason}"


def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool,
         timeout: float, keep_body: bool = False, body_limit: int = ANSWER_BYTES) -> Answer:
    """POST `body` to `url` and return the answer, whatever its status (a redirect is not
    followed), with the start of its body (`body_limit` bytes) when it is not 2xx or
    `keep_body` asks for it.
    No answer in full within `timeout` seconds from the start (look-up,
    connection, request and answer together) is a TransportError. Unless `allow_private`,
    a host with any address that is not public is refused without connecting: at once and
    for good when the host is written as one (or is `localhost`), else in the same words
    whether its name does not resolve or resolves to a private address."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TransportError("the URL's port is not valid", permanent=True) from None
    if parts.scheme not in ("http", "https") or not host:
        raise TransportError("the URL is not an http:// or https:// URL", permanent=True)
    try:
        host = host_name(host)  # the same name the URL was checked with when saved
    except ValueError:
        raise TransportError("the URL's host name is not valid", permanent=True) from None
    if not allow_private and is_private_host(host):
        raise TransportError(REFUSED_PRIVATE, permanent=True)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = Deadline(timeout)
    with deadline:
        try:
            if allow_private:
                addresses = resolve(host, port, deadline)
            else:
                addresses = public_addresses(host, port, deadline)
            pinned = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
            connection = pinned(host, port, addresses, deadline)
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                answer = Answer(response.status, response.reason,
                                {name.lower(): value for name, value in response.getheaders()})
                if keep_body or not 200 <= answer.status < 300:
                    answer = Answer(answer.status, answer.reason, answer.headers,
                                    *_start_of(response, body_limit))
            finally:
                connection.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if deadline.expired or isinstance(exc, TimeoutError):
                raise TransportError(f"no complete answer within {deadline.seconds:g} s "
                                     "(the whole attempt's deadline)") from None
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
    return answer


def _start_of(response: http.client.HTTPResponse, limit: int) -> tuple[str, bool]:
    """The start of an answer's body and whether it was cut (it went on past `limit`, or
    broke off); nothing if it cannot be read (the status says enough)."""
    try:
        start = response.read(limit + 1)
    except (OSError, http.client.HTTPException):
        return "", True
    return start[:limit].decode(errors="replace").strip(), len(start) > limit
