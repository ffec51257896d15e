"""Host-dependent defaults: the node name and the IPv4 address of the default-route interface.

Detection never sends a packet: the default route is read from ``/proc/net/route`` and the interface
address is asked of the kernel with the ``SIOCGIFADDR`` ioctl. Everything is injectable through
:class:`HostFacts` so that tests never depend on the machine they run on.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PROC_NET_ROUTE = Path("/proc/net/route")
_SIOCGIFADDR = 0x8915
_RTF_UP = 0x1


def default_route_interface(route_table: str) -> str | None:
    """Return the interface of the lowest-metric IPv4 default route in ``/proc/net/route`` text.

    Columns are ``Iface Destination Gateway Flags RefCnt Use Metric Mask ...`` (hex, host order).
    """
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        iface, dest, flags, metric, mask = cols[0], cols[1], cols[3], cols[6], cols[7]
        try:
            if int(dest, 16) != 0 or int(mask, 16) != 0 or not int(flags, 16) & _RTF_UP:
                continue
            rank = int(metric)
        except ValueError:
            continue
        if best is None or rank < best[0]:
            best = (rank, iface)
    return best[1] if best else None


def interface_ipv4(iface: str) -> str | None:
    """The primary IPv4 address of ``iface`` via ``SIOCGIFADDR`` (no traffic), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            request = struct.pack("256s", iface.encode()[:15])
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(reply[20:24])


def detect_default_ipv4(
    route_table: Path = PROC_NET_ROUTE,
    address_of: Callable[[str], str | None] = interface_ipv4,
) -> str | None:
    """The IPv4 address of the default-route interface, or None when there is no usable default route."""
    try:
        text = route_table.read_text()
    except OSError:
        return None
    iface = default_route_interface(text)
    return address_of(iface) if iface else None


def detect_hostname() -> str:
    """The host name, lower-cased, as kubeadm uses it for the default node name."""
    return socket.gethostname().strip().lower()


@dataclass(frozen=True)
class HostFacts:
    """Where host-dependent defaults come from; tests pass fakes."""

    hostname: Callable[[], str] = detect_hostname
    default_ipv4: Callable[[], str | None] = field(default=detect_default_ipv4)
