"""Address lists from the config: networks that are never banned, proxies whose PROXY header
is believed. Parsed once when the config loads; matched per connection on the reactor."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`); ValueError
    names the first one that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR block: {value!r}") from None
    return tuple(networks)


def in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether `address` (text; an IPv4-mapped IPv6 address counts as its IPv4 address) is
    in one of `networks`; False for anything that is not an address."""
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


@functools.lru_cache(maxsize=64)
def networks_of(values: tuple[str, ...]) -> tuple[Network, ...]:
    """`parse_networks` for a config's list, parsed once (the lists were checked when the
    config loaded)."""
    return parse_networks(values)
