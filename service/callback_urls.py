"""Which callback URLs the service may POST to: the guard against server-side request forgery.

A webhook makes the server send a request wherever a client says, so a URL whose host
resolves to an address inside the deployment (loopback, link-local such as the cloud metadata
service at 169.254.169.254, private ranges, CGNAT, multicast, reserved) is refused unless the
operator allows it. Every address a name resolves to is checked, and IPv6 forms that embed an
IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that address. The check runs at
createJob and again at each delivery, whose connection then goes to an address that passed
(a name that resolves differently the second time, DNS rebinding, gains nothing).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class CallbackRefused(ValueError):
    """The URL may not be called; the message says why, for the client or the delivery log."""


class CallbackUnresolvable(CallbackRefused):
    """The name did not resolve: refused at createJob, retried later at delivery."""


@dataclass(frozen=True)
class CallbackEndpoint:
    """A URL checked and resolved: connect to `address`, and name `host` (Host, SNI)."""

    scheme: str
    host: str
    port: int
    address: IPAddress


def refusal(address: IPAddress) -> str | None:
    """Why a POST to this address is refused, or None when it is a public unicast address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refusal(embedded)
    for reason, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", address in _CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return f"{address} is a {reason} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(url: str, allow_private: bool) -> CallbackEndpoint:
    """Check `url` and pick the address to connect to; CallbackRefused says why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("must not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise CallbackRefused("has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise CallbackRefused(f"{host} resolves to {reason}")
    return CallbackEndpoint(scheme=parts.scheme, host=host, port=port, address=addresses[0])


def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackUnresolvable(f"{host} does not resolve: {exc}") from exc
    # An IPv6 scope ("fe80::1%eth0") is not part of the address.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise CallbackUnresolvable(f"{host} does not resolve")
    return addresses
