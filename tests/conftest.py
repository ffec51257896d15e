"""Shared fixtures: drive the real entry point in-process, with every path under a temporary rootfs."""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.cli.main import main
from tests.netns import route_proven

NODE = "cp1"
# No kubelet or API server runs in these tests unless a test starts the stand-ins: skip the phases
# that need a running control plane.
CLUSTER_PHASES = (
    "wait-control-plane,upload-config,mark-control-plane,bootstrap-token,kubelet-finalize,addon,"
    "show-join-command"
)
# ...and the host checks a bare rootfs cannot pass (no kubelet binary, no CRI socket, maybe swap).
HOST_CHECKS = "FileExisting-kubelet,CRI,Swap"
NO_WAIT = ("--skip-phases", CLUSTER_PHASES, "--ignore-preflight-errors", HOST_CHECKS)
ADDRESS = "10.0.0.1"


def _refuse_to_leave_this_machine(event: str, args: tuple[Any, ...]) -> None:
    """Test traffic stays on this machine: a TCP connect from the test process to anything but
    loopback is refused, as on a host with no network. (Addresses such as ADDRESS above are written
    into certificates and manifests; a run that tried to reach them would otherwise leave the machine
    wherever a route exists.) UDP connects send nothing and are left alone.

    The one exception is a multi-node test's private bridge (tests/netns.py): an address there may be
    reached from a thread inside one of the test's namespaces once the harness has asked the kernel
    (``ip route get`` in that namespace) and found the route goes through the test's own bridge. The
    proof is registered per (namespace, address), so the same address from the root namespace, or
    before the check, is still refused."""
    if event != "socket.connect" or getattr(args[0], "type", None) != socket.SOCK_STREAM:
        return
    address = args[1]
    if not isinstance(address, tuple) or not address:
        return  # a Unix socket path
    host = str(address[0]).split("%")[0]
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    if route_proven(host):
        return
    raise ConnectionRefusedError(errno.ECONNREFUSED, f"test guard: {host} is not on this machine")


sys.addaudithook(_refuse_to_leave_this_machine)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stdout)
        return document


CliRunner = Callable[..., CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run ``bootstrap <args>`` through ``main`` (the real error mapping) and capture its output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        code = exited.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1), out, err)

    return run


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    root.mkdir()
    return root


@pytest.fixture
def node_args(rootfs: Path) -> list[str]:
    """Flags that make a run independent of this machine's hostname and network."""
    return ["--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", ADDRESS]


STATE_DIR = "var/lib/kube-bootstrap"


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` except our own state (the ledger and the run lock)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not str(p.relative_to(root)).startswith(STATE_DIR)
    )


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory that ``build`` fills once per test run, shared by every pytest-xdist worker.

    Each xdist worker runs session and module fixtures on its own, with its own base temp dir; those
    dirs share a parent. The first worker to get there builds under a lock, the others wait and reuse
    the result. A build that fails leaves no mark, so a later worker tries again (and fails with its
    own message) instead of reusing half a directory.
    """
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent
    target, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if build raises
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            done.touch()
    return target
