"""The one reader of ``host[:port]`` endpoints: ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a
bare IPv6 address, as kubeadm writes them (controlPlaneEndpoint, URLs' authorities, --listen).

Free of pydantic: the PKI, the component manifests and the CLI split endpoints too.
"""

from __future__ import annotations

import ipaddress
import re

_PORT = re.compile(r"[0-9]{1,5}")

# kubeadm's default for localAPIEndpoint.bindPort and a controlPlaneEndpoint without a port; the
# component table (kube-apiserver's --secure-port) reads it from here.
APISERVER_PORT = 6443


def is_ip(text: str) -> bool:
    """True for a literal IPv4 or IPv6 address, as Go's ``net.ParseIP`` reads it (no ``%zone``)."""
    if "%" in text or not text.isascii():
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_port(text: str) -> int | None:
    """The port number in ``text`` if it is ASCII decimal 1-65535 (full-width digits are not), else None."""
    if not _PORT.fullmatch(text):
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


def split_host_port(endpoint: str) -> tuple[str, str | None]:
    """Split ``host[:port]`` / ``[v6][:port]`` / bare IPv6; the port is returned unparsed.

    Raises ValueError for an unclosed or misplaced bracket, or a bracketed host that is not IPv6.
    """
    if endpoint.startswith("["):
        host, closed, rest = endpoint[1:].partition("]")
        if not closed:
            raise ValueError("missing ']' after the IPv6 address")
        if ":" not in host or not is_ip(host):
            raise ValueError("only an IPv6 address may be written in brackets")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("unexpected text after the bracketed address")
        return host, rest[1:]
    if "[" in endpoint or "]" in endpoint:
        raise ValueError("misplaced bracket")
    if endpoint.count(":") > 1:
        return endpoint, None  # a bare IPv6 address
    host, sep, port = endpoint.partition(":")
    return host, (port if sep else None)
