"""The test session itself: it cannot reach beyond this machine (see the guard in conftest)."""

from __future__ import annotations

import socket

import pytest


@pytest.mark.parametrize("address", ["10.0.0.1", "192.0.2.1", "2001:db8::1"])
def test_a_connect_beyond_loopback_is_refused_in_tests(address: str) -> None:
    with pytest.raises(ConnectionRefusedError, match="not on this machine"):
        socket.create_connection((address, 6443), timeout=2)


def test_loopback_is_reachable_in_tests() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
