"""The test harness never hands a component a port the control plane uses by default: a test that keeps
the defaults checks those ports at preflight, on every interface, while other workers' tests run."""

from __future__ import annotations

import itertools

import pytest

from tests.standin import harness


def test_free_ports_skip_the_default_control_plane_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    # The cursor points at 10248 in gw0's block: the next ports it may give are 10260 and on.
    monkeypatch.setattr(harness, "_port_cursor", itertools.count(10248 - harness._FIRST_PORT))
    ports = harness.free_ports(3)
    assert not set(ports) & set(range(10248, 10260)), ports
    assert all(port >= 10260 for port in ports), ports
