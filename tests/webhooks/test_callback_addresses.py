"""The address guard: every resolved address of a callback host must be public unicast."""

import ipaddress

import pytest

from service.callback_urls import CallbackRefused, CallbackUnresolvable, refusal, resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "100.64.0.1",  # CGNAT
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:7f00:1]/hook",
    ],
)
def test_urls_reaching_inside_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(CallbackRefused):
        resolve(url, allow_private=False)
    assert refusal(resolve(url, allow_private=True).address) is not None  # allowed, not public


def test_allowed_private_url_is_pinned_to_its_resolved_address() -> None:
    endpoint = resolve("http://localhost:8123/x", allow_private=True)
    assert endpoint.host == "localhost" and endpoint.port == 8123
    assert endpoint.address.is_loopback


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "http or https"),
        ("http://user:pw@example.com/x", "credentials"),
    ],
)
def test_other_schemes_and_credentials_are_refused(url: str, reason: str) -> None:
    with pytest.raises(CallbackRefused, match=reason):
        resolve(url, allow_private=True)


def test_a_name_that_does_not_resolve_is_refused_as_unresolvable() -> None:
    with pytest.raises(CallbackUnresolvable):
        resolve("http://nothing.invalid/hook", allow_private=False)  # RFC 2606: never resolves
